"""Issue 11 item 11: spend pacing waits for a documented minimum elapsed share of the window and a minimum
spend before it acts (an early projection is noise), and ``router explain --at`` paces at --at, not at the
wall clock. Boundaries are exact: November 2026 has 30 days, so 10 % of it is 72 hours."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from router.cli import get_app
from router.errors import PolicyError
from router.policy import StateSnapshot
from tests.policy.conftest import compile_text, feats
from tests.policy.test_pacing import POLICY  # the same pacing policy: best, then cheap at 100 % of pace

UTC = dt.timezone.utc


def decide(spend: str, now: dt.datetime, policy: str = POLICY):
    return compile_text(policy).decide(feats(tenant="acme"), StateSnapshot(spend={"tenant:acme": Decimal(spend)}, now=now))


def test_one_dollar_in_the_first_hour_of_a_month_does_not_act():
    # Before: $1 x 744 hours = $744 projected = 248 % of $300, and the tenant was refused.
    d = decide("1", dt.datetime(2026, 12, 1, 1, 0, tzinfo=UTC))
    assert d.profile == "best" and d.actions == []


def test_the_minimum_elapsed_share_boundary():
    # $100 projects x10 = $1000 (333 %) at exactly 72 h: the pace actions act from that instant, not before.
    assert decide("100", dt.datetime(2026, 11, 3, 23, 59, 59, 999000, tzinfo=UTC)).actions == []
    with pytest.raises(Exception, match="on pace for 1000% by window end >= 200%"):
        decide("300", dt.datetime(2026, 11, 4, tzinfo=UTC))
    d = decide("30", dt.datetime(2026, 11, 4, tzinfo=UTC))  # $30 x 10 = $300 = 100 %
    assert d.profile == "cheap"
    assert d.actions[0].startswith("tenant:acme|calendar:month@UTC on pace for 100% by window end >= 100%")


def test_the_minimum_spend_boundary():
    policy = POLICY.replace('limit_usd: "300"', 'limit_usd: "300"\n    pace_min_spend_percent: 50')
    eleventh = dt.datetime(2026, 11, 11, tzinfo=UTC)  # a third of the month: projections are x3
    assert decide("149.99", eleventh, policy).profile == "best"  # x3 = 150 %, but spend is under 50 % of $300
    assert decide("150", eleventh, policy).profile == "cheap"  # exactly 50 % spent: pacing acts (150 %)
    # The default minimum spend is 10 % of the limit: $29.99 at 10 % elapsed (x10 = 99.97 %) is below both.
    assert decide("29.99", dt.datetime(2026, 11, 4, tzinfo=UTC)).profile == "best"


def test_minimums_can_be_tuned_down():
    policy = POLICY.replace('limit_usd: "300"', 'limit_usd: "300"\n    pace_min_elapsed_percent: 1\n    pace_min_spend_percent: 0')
    # 1 % of 720 h = 7 h 12 min: $3 at that instant projects x100 = $300 = 100 %.
    assert decide("3", dt.datetime(2026, 11, 1, 7, 12, tzinfo=UTC), policy).profile == "cheap"
    assert decide("3", dt.datetime(2026, 11, 1, 7, 11, 59, tzinfo=UTC), policy).profile == "best"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("pace_min_elapsed_percent: 100", "pace_min_elapsed_percent: must be a percent from 0 to less than 100, not 100"),
        ("pace_min_spend_percent: -1", "pace_min_spend_percent: must be a percent from 0 to less than 100, not -1"),
        ("pace_min_spend_percent: lots", "pace_min_spend_percent: 'lots' is not a number"),
    ],
)
def test_bad_minimums_are_refused_with_their_line(line, message):
    with pytest.raises(PolicyError) as info:
        compile_text(POLICY.replace('limit_usd: "300"', f'limit_usd: "300"\n    {line}'))
    text = str(info.value)
    assert "p.yaml:13:5:" in text and message in text


def test_minimums_without_pace_actions_are_refused():
    policy = POLICY.replace("at_pace_percent: 100", "at_percent: 100").replace("at_pace_percent: 200", "at_percent: 200")
    with pytest.raises(PolicyError) as info:
        compile_text(policy.replace('limit_usd: "300"', 'limit_usd: "300"\n    pace_min_spend_percent: 5'))
    assert "pace_min_spend_percent only applies to at_pace_percent actions" in str(info.value)


def _explain(tmp_path, *extra: str) -> dict:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    args = ["explain", "--policy", str(path), "--tenant", "acme", "--prompt-tokens", "100", "--max-tokens", "100", "--json", *extra]
    result = CliRunner().invoke(get_app(), args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_explain_paces_at_the_at_date_not_the_wall_clock(tmp_path):
    out = _explain(tmp_path, "--spend", "tenant:acme=101", "--at", "2026-11-11")  # 00:00 UTC: x3 = 101 %
    assert out["profile"] == "cheap" and out["refused"] is None
    assert out["actions"][0].startswith("tenant:acme|calendar:month@UTC on pace for 101% by window end >= 100%")
    assert out["request"]["at"] == "2026-11-11"
    out = _explain(tmp_path, "--spend", "tenant:acme=30", "--at", "2026-11-04T00:00:00")
    assert out["profile"] == "cheap"
    out = _explain(tmp_path, "--spend", "tenant:acme=30", "--at", "2026-11-03T23:59:59")
    assert out["profile"] == "best" and out["actions"] == []
    # An offset is honoured: 05:00+05:00 is 00:00 UTC.
    out = _explain(tmp_path, "--spend", "tenant:acme=30", "--at", "2026-11-04T05:00+05:00")
    assert out["profile"] == "cheap"


def test_explain_refuses_a_bad_at(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(POLICY)
    result = CliRunner().invoke(get_app(), ["explain", "--policy", str(path), "--at", "11/04/2026"])
    assert result.exit_code == 2
    assert "--at: '11/04/2026' is neither a date" in result.output
