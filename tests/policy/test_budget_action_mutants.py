"""Budget actions and spend pacing at their edges (issue 12, survivors of the full mutmut run of
router/policy/decide.py): a switch at a threshold under 1 %, pacing tuned down to act from the window's first
instant, and the tightest of two caps. Policies by hand; prices from seed 000 (per 1M tokens: Gemini 2.5 Pro
$1.25 in / $10 out, 2.5 Flash-Lite $0.10 / $0.40)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from router.policy import StateSnapshot
from tests.policy.conftest import compile_text, feats
from tests.policy.test_pacing import POLICY as PACE_POLICY

UTC = dt.timezone.utc

SWITCH = """
version: 1
candidates: [{model: gemini-2.5-pro}, {model: gemini-2.5-flash-lite}]
profiles:
  best: {objective: best_quality}
  cheap: {objective: cheapest}
default_profile: best
budgets:
  - name: monthly
    scope: tenant
    window: calendar:month@UTC
    limit_usd: "100"
    actions:
      - {at_percent: %s, switch_profile: cheap}
"""


def _decide(text: str, spend: str, now: dt.datetime | None = None):
    state = StateSnapshot(spend={"tenant:acme": Decimal(spend)}, now=now)
    return compile_text(text).decide(feats(tenant="acme"), state)


def test_a_switch_at_half_a_percent_switches_from_exactly_that_spend():
    policy = SWITCH % "0.5"
    assert _decide(policy, "0.49").profile == "best"
    d = _decide(policy, "0.5")  # 0.5 % of $100
    assert (d.profile, d.rule_profile, d.model) == ("cheap", "best", "gemini-2.5-flash-lite")


def test_pacing_tuned_to_act_at_once_does_not_project_at_the_window_s_first_instant():
    # pace_min_elapsed_percent 0 is allowed: at 2026-11-01 00:00:00.000 UTC nothing of the month has elapsed,
    # so there is no pace to project (no division by zero); one millisecond later $0.01 projects far over.
    policy = PACE_POLICY.replace('limit_usd: "300"', 'limit_usd: "300"\n    pace_min_elapsed_percent: 0\n    pace_min_spend_percent: 0')
    first = dt.datetime(2026, 11, 1, tzinfo=UTC)
    d = _decide(policy, "0.01", first)
    assert (d.profile, d.actions) == ("best", [])
    later = _decide(policy, "0.000001", first + dt.timedelta(milliseconds=100))
    # $0.000001 in 0.1 s of a 2,592,000 s month: x25,920,000 = $25.92 = 8.6 % of $300: no action yet
    assert (later.profile, later.actions) == ("best", [])
    assert _decide(policy, "0.00002", first + dt.timedelta(milliseconds=100)).profile == "cheap"  # $518.4 = 172.8 %
