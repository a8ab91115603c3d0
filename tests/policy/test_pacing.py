"""Spend pacing: a budget action can trigger on the projected spend at the end of a calendar window, so a
tenant burning through its month early is downgraded before it hits the limit, not after."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from router.errors import PolicyError, RequestRefusedError
from router.policy import StateSnapshot
from tests.policy.conftest import compile_text, feats

POLICY = """
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
    limit_usd: "300"
    actions:
      - {at_pace_percent: 100, switch_profile: cheap}
      - {at_pace_percent: 200, refuse: true}
"""
# November 2026 has 30 days; on the 11th at 00:00 UTC ten days, a third of the month, have passed.
TENTH = dt.datetime(2026, 11, 11, tzinfo=dt.timezone.utc)


def decide(spend: str, now: dt.datetime = TENTH):
    cp = compile_text(POLICY)
    return cp.decide(feats(tenant="acme"), StateSnapshot(spend={"tenant:acme": Decimal(spend)}, now=now))


def test_on_pace_to_stay_under_the_limit_keeps_the_profile():
    d = decide("99")  # x3 by month end = $297 < $300
    assert d.profile == "best" and not d.actions


def test_on_pace_to_pass_the_limit_switches_early():
    d = decide("101")  # x3 = $303 >= $300, though only 34 % is spent
    assert d.profile == "cheap" and d.primary.model == "gemini-2.5-flash-lite"
    assert "on pace for 101% by window end >= 100%" in d.actions[0]


def test_on_pace_for_double_refuses():
    with pytest.raises(RequestRefusedError) as info:
        decide("200")  # x3 = $600 = 200 %
    assert "on pace for 200%" in str(info.value)


def test_the_same_spend_late_in_the_month_is_on_pace():
    late = dt.datetime(2026, 11, 28, tzinfo=dt.timezone.utc)  # 27 of 30 days gone: x1.11
    assert decide("250", now=late).profile == "best"


def test_pacing_needs_at_least_an_hour_of_the_window():
    first_minute = dt.datetime(2026, 11, 1, 0, 1, tzinfo=dt.timezone.utc)
    # $0.40 in the first minute would project to $17,280; measured over one hour it is $288 (< $300).
    assert decide("0.40", now=first_minute).profile == "best"


def test_pacing_on_a_rolling_window_is_a_validation_error():
    with pytest.raises(PolicyError) as info:
        compile_text(POLICY.replace("calendar:month@UTC", "rolling:30d"))
    assert "at_pace_percent needs a calendar window" in str(info.value)


def test_an_action_needs_exactly_one_threshold():
    with pytest.raises(PolicyError) as info:
        compile_text(POLICY.replace("{at_pace_percent: 100, switch_profile: cheap}", "{at_percent: 80, at_pace_percent: 100, switch_profile: cheap}"))
    assert "exactly one of at_percent or at_pace_percent" in str(info.value)
