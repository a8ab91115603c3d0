"""Provisioned Throughput subscriptions as policy data: validation errors, catalog burndown overlays,
capacity and the amortised cost of a request (hand-computed from seed 000)."""

from __future__ import annotations

import datetime as dt
import textwrap
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from router.catalog import default_catalog, load_catalog
from router.errors import CatalogError, PolicyError
from router.policy import load_policy
from router.provisioned import active_subscriptions, burndown_tokens, term_units

ROOT = Path(__file__).resolve().parents[2]


def policy_text(subscriptions: str, extra: str = "") -> str:
    return textwrap.dedent(
        """\
        version: 1
        provisioned:
          subscriptions:
        {subs}
        profiles:
          cheap:
            objective: cheapest
        {extra}
        default_profile: cheap
        """
    ).format(subs=textwrap.indent(textwrap.dedent(subscriptions), "    "), extra=extra)


GOOD = """\
- model: gemini-2.0-flash
  region: us-central1
  gsu: 2
  term: 1w
  start: 2026-11-02
  end: 2026-11-16
"""


def problems(text: str, catalog=None) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_policy(text, catalog or default_catalog(), filename="p.yaml")
    return [f"{line}:{col}: {msg}" for _, line, col, msg in info.value.problems]


def test_a_valid_subscription_loads():
    policy = load_policy(policy_text(GOOD), default_catalog())
    [sub] = policy.provisioned.subscriptions
    assert (sub.model, sub.region, sub.gsu, sub.term, sub.start, sub.end) == ("gemini-2.0-flash", "us-central1", 2, "1w", dt.date(2026, 11, 2), dt.date(2026, 11, 16))
    assert policy.provisioned.mode == "first"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("gemini-2.0-flash", "gemini-2.0-flsh"), "4:7: unknown model 'gemini-2.0-flsh'; closest ids: gemini-2.0-flash"),
        (("gemini-2.0-flash", "gemini-2.5-pro"), "4:7: no Provisioned Throughput burndown rates for gemini-2.5-pro in the catalog"),
        (("us-central1", "mars-north1"), "5:7: gemini-2.0-flash is not served in 'mars-north1'"),
        (("2026-11-16", "2026-11-17"), "9:7: a 1w subscription spans whole weeks: 15 days"),
        (("end: 2026-11-16", "end: 2026-11-02"), "9:7: end 2026-11-02 must be after start 2026-11-02"),
        (("term: 1w", "term: 2w"), "7:7: provisioned.subscriptions.0.term: unknown value '2w' (one of: 1w, 1m, 3m, 1y)"),
        (("gsu: 2", "gsu: 0"), "6:7: provisioned.subscriptions.0.gsu: Input should be greater than 0"),
        (("start: 2026-11-02", "start: 2026-13-02"), "8:7: provisioned.subscriptions.0.start:"),
    ],
)
def test_bad_subscriptions_are_errors_with_line_and_column(change, expected):
    text = policy_text(GOOD.replace(*change))
    found = problems(text)
    assert any(p.startswith(expected) for p in found), found


def test_month_terms_need_whole_terms_from_the_start_day():
    one_month = GOOD.replace("1w", "1m").replace("2026-11-16", "2026-12-02")
    load_policy(policy_text(one_month), default_catalog())
    three = GOOD.replace("1w", "3m").replace("2026-11-16", "2026-12-02")
    assert any("whole terms of 3 month(s)" in p for p in problems(policy_text(three)))
    assert term_units("3m", dt.date(2026, 1, 31), dt.date(2026, 7, 31)) == 6
    assert term_units("1y", dt.date(2026, 1, 1), dt.date(2027, 1, 1)) == 12
    with pytest.raises(ValueError):
        term_units("1m", dt.date(2026, 1, 31), dt.date(2026, 2, 28))


def test_modes_are_checked():
    text = policy_text(GOOD, extra="    provisioned: sometimes")
    assert any("profiles.cheap.provisioned: unknown value 'sometimes' (one of: first, only, never)" in p for p in problems(text))
    wait = policy_text(GOOD).replace("provisioned:\n", "provisioned:\n  wait_s: 31\n", 1)
    assert any("wait_s must be between 0 and 30" in p for p in problems(wait))


BURNDOWN_OVERLAY = """\
# Test values, not rates: they only check that an overlay's burndown rates are used as written.
provisioned_burndown:
  - model: gemini-2.5-pro
    tokens_per_second_per_gsu: 650
    min_gsu_increment: 1
    input_text: 1
    input_audio: 1
    output_text: 8
    provenance: {source: "https://example.com/operator-sheet", section: "test sheet"}
"""


def test_an_overlay_adds_burndown_rates_with_a_public_source(tmp_path):
    (tmp_path / "pt.yaml").write_text(BURNDOWN_OVERLAY)
    catalog = load_catalog(overlays=[tmp_path / "pt.yaml"])
    rates = {b.model: b for b in catalog.provisioned.burndown}
    assert rates["gemini-2.5-pro"].tokens_per_second_per_gsu == 650
    assert rates["gemini-2.0-flash"].tokens_per_second_per_gsu == 3360  # the seed's rates stay
    load_policy(policy_text(GOOD.replace("gemini-2.0-flash", "gemini-2.5-pro")), catalog)
    (tmp_path / "bad.yaml").write_text(BURNDOWN_OVERLAY.replace("https://example.com/operator-sheet", "memory"))
    with pytest.raises(CatalogError, match=r"bad.yaml:9:5: provisioned burndown rates need provenance.source"):
        load_catalog(overlays=[tmp_path / "bad.yaml"])
    (tmp_path / "unknown.yaml").write_text(BURNDOWN_OVERLAY.replace("gemini-2.5-pro", "gemini-9"))
    with pytest.raises(CatalogError, match=r"unknown.yaml:3:5: provisioned_burndown names unknown model 'gemini-9'"):
        load_catalog(overlays=[tmp_path / "unknown.yaml"])


def test_burndown_tokens_follow_the_seed_example():
    rates = next(b for b in default_catalog().provisioned.burndown if b.model == "gemini-2.0-flash")
    # seed 000: 1,000 text + 500 audio in, 300 out -> 1000 + 3500 + 1200 = 5,700 per request
    assert burndown_tokens(rates, input_tokens=1500, audio_input_tokens=500, output_tokens=300) == 5700
    assert burndown_tokens(rates, input_tokens=100, output_tokens=10, thinking_tokens=5) == 100 + 15 * 4


def test_capacity_and_amortised_cost_of_a_weekly_subscription():
    policy = load_policy(policy_text(GOOD), default_catalog())
    active = active_subscriptions(policy.provisioned.subscriptions, default_catalog(), dt.date(2026, 11, 3))
    sub = active[("gemini-2.0-flash", "us-central1")]
    # 2 GSU x 3,360 tokens/s = 6,720 tokens/s; 30 s window: 201,600
    assert (sub.gsu, sub.tokens_per_second, sub.capacity) == (2, 6720, 201_600)
    # 2 weeks x $1,200 x 2 GSU = $4,800 for 14 days x 86,400 s x 2 GSU: $1,200 / 604,800 per GSU-second
    assert sub.price_per_gsu_second == Fraction(1200, 604_800)
    # 3,360 tokens = 1 GSU-second = $0.001984126984... -> $0.001984127 (to the nano-dollar)
    assert sub.gsu_seconds(3360) == Decimal(1)
    assert sub.amortised_cost(3360) == Decimal("0.001984127")
    assert sub.amortised_cost(5700) == Decimal("0.003365930")  # 5700/3360 x 1200/604800 = 0.00336593...
    assert active_subscriptions(policy.provisioned.subscriptions, default_catalog(), dt.date(2026, 11, 16)) == {}
