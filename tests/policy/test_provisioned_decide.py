"""Provisioned Throughput in the decision: marginal cost 0 while capacity lasts, the PayGo spill when it is
short, `only` and `never`, and what `router explain` shows. Hand-computed from seed 000:
gemini-2.0-flash $0.15 / $0.60 per 1M in / out, gemini-2.0-flash-lite $0.075 / $0.30; burndown 1 / 4;
1 GSU = 3,360 adjusted tokens/s = 100,800 per 30 s window."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from router.catalog import default_catalog
from router.errors import NoEligibleModelError
from router.policy import RequestFeatures, StateSnapshot, compile_policy, load_policy

DAY = dt.date(2026, 11, 3)
KEY = "gemini-2.0-flash@us-central1"


def compiled(mode="first", profile_mode="", candidate_mode="", subscription=True):
    subs = "    - {model: gemini-2.0-flash, region: us-central1, gsu: 1, term: 1w, start: 2026-11-02, end: 2026-11-09}\n" if subscription else ""
    text = textwrap.dedent(
        """\
        version: 1
        provisioned:
          mode: {mode}
          subscriptions:
        {subs}candidates:
          - {{model: gemini-2.0-flash, location: us-central1{cand}}}
          - {{model: gemini-2.0-flash-lite}}
        profiles:
          cheap: {{objective: cheapest{prof}}}
        default_profile: cheap
        """
    ).format(
        mode=mode,
        subs=subs if subs else "      []\n",
        cand=f", provisioned: {candidate_mode}" if candidate_mode else "",
        prof=f", provisioned: {profile_mode}" if profile_mode else "",
    )
    text = text.replace("  subscriptions:\n      []\n", "  subscriptions: []\n")
    return compile_policy(load_policy(text, default_catalog()), default_catalog())


# 1,000 prompt + 500 max_tokens: PT needs 1,000 + 2,000 = 3,000 adjusted tokens.
FEATURES = RequestFeatures(prompt_tokens=1000, max_tokens=500, at=DAY)


def test_with_headroom_the_subscription_ranks_first_at_zero_cost():
    d = compiled().decide(FEATURES, StateSnapshot(pt={KEY: 97_800}))  # headroom 3,000: exactly enough
    assert (d.model, d.estimated_cost, d.upper_bound_cost) == ("gemini-2.0-flash", 0, 0)
    pt = d.primary.provisioned
    assert (pt.key, pt.tokens, pt.headroom, pt.capacity, pt.covered) == (KEY, 3000, 3000, 100_800, True)
    # the PayGo it would have cost: 1000 x 0.15 + 250 (expected output) x 0.60 = $0.0003; upper 500 x 0.60: $0.00045
    assert d.to_dict()["provisioned"]["paygo_estimated_cost_usd"] == "0.0003"
    assert d.to_dict()["provisioned"]["paygo_upper_bound_cost_usd"] == "0.00045"
    assert any("marginal cost $0" in n for n in d.notes)


def test_without_headroom_it_is_estimated_and_reserved_as_the_paygo_spill():
    d = compiled().decide(FEATURES, StateSnapshot(pt={KEY: 97_801}))  # headroom 2,999 < 3,000
    assert d.model == "gemini-2.0-flash-lite"  # 1000 x 0.075 + 250 x 0.30 = $0.00015 < $0.0003
    flash = d.fallbacks[0]
    assert (flash.model, flash.estimated_cost, flash.upper_bound_cost) == ("gemini-2.0-flash", Decimal("0.0003"), Decimal("0.00045"))
    assert flash.provisioned.covered is False
    assert any("estimated and reserved as a PayGo spill" in n for n in d.notes)


def test_only_rejects_a_saturated_subscription_and_a_candidate_without_one():
    cp = compiled(mode="only")
    d = cp.decide(FEATURES, StateSnapshot(pt={KEY: 0}))
    assert d.model == "gemini-2.0-flash" and d.estimated_cost == 0
    assert ("gemini-2.0-flash-lite", "no active Provisioned Throughput subscription for gemini-2.0-flash-lite in global (provisioned: only)") in d.rejected
    with pytest.raises(NoEligibleModelError) as info:
        cp.decide(FEATURES, StateSnapshot(pt={KEY: 100_000}))
    assert ("gemini-2.0-flash", "Provisioned Throughput gemini-2.0-flash@us-central1 saturated: headroom 800 < this request's 3,000 burndown-adjusted tokens (provisioned: only)") in info.value.rejected
    # outside the subscription's dates there is nothing to use
    with pytest.raises(NoEligibleModelError):
        cp.decide(RequestFeatures(prompt_tokens=1000, max_tokens=500, at=dt.date(2026, 11, 9)), StateSnapshot())


def test_candidate_and_profile_settings_override_the_policy_mode():
    assert compiled(mode="only", candidate_mode="first", profile_mode="first").decide(FEATURES, StateSnapshot(pt={KEY: 100_000})).model == "gemini-2.0-flash-lite"
    never = compiled(profile_mode="never").decide(FEATURES, StateSnapshot())
    assert never.model == "gemini-2.0-flash-lite"  # PayGo prices: the subscription is not used
    assert never.fallbacks[0].provisioned.mode == "never"
    assert compiled(candidate_mode="only", subscription=False).decide(FEATURES, StateSnapshot()).model == "gemini-2.0-flash-lite"


def test_explain_shows_the_headroom_and_why(tmp_path):
    from router.cli import get_app

    path = tmp_path / "pt.yaml"
    path.write_text(
        "version: 1\nprovisioned:\n  subscriptions:\n"
        "    - {model: gemini-2.0-flash, region: us-central1, gsu: 1, term: 1w, start: 2026-11-02, end: 2026-11-09}\n"
        "candidates: [{model: gemini-2.0-flash, location: us-central1}, {model: gemini-2.0-flash-lite}]\n"
        "profiles: {cheap: {objective: cheapest}}\ndefault_profile: cheap\n"
    )
    base = ["explain", "--policy", str(path), "--prompt-tokens", "1000", "--max-tokens", "500", "--at", "2026-11-03"]
    out = CliRunner().invoke(get_app(), [*base, "--pt", f"{KEY}=90000", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["model"] == "gemini-2.0-flash" and data["provisioned"]["headroom"] == 10_800
    assert data["provisioned"]["why"] == (
        "Provisioned Throughput gemini-2.0-flash@us-central1 (first): headroom 10,800 of 100,800 burndown-adjusted tokens "
        "in the 30 s window >= this request's 3,000: marginal cost $0"
    )
    bad = CliRunner().invoke(get_app(), [*base, "--pt", "gemini-2.5-pro@global=1"])
    assert bad.exit_code == 2 and "is not a subscription of the policy" in bad.output
