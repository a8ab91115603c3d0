"""When ``settings.count_tokens: near_limits`` wants a count (pure: no network), and the setting's validation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from router.errors import PolicyError
from router.policy import RequestFeatures, StateSnapshot
from router.policy.counting import count_target, count_trigger, with_margin
from tests.policy.conftest import DAY, compile_text

POLICY = """\
version: 1
settings:
  count_tokens: near_limits
  count_tokens_margin: {margin}
profiles:
  a:
    candidates:
      - model: gemini-2.5-pro
      - model: deepseek-v3.1
  cheap:
    candidates:
      - model: gemini-1.0-pro
default_profile: a
budgets:
  - scope: tenant
    window: calendar:day
    limit_usd: "1"
    actions:
      - {{at_percent: 90, switch_profile: cheap}}
"""


def f(prompt: int, max_tokens: int = 1000, tenant: str | None = None, caps: frozenset[str] = frozenset()) -> RequestFeatures:
    return RequestFeatures(tenant=tenant, prompt_tokens=prompt, max_tokens=max_tokens, required_capabilities=caps, at=DAY)


@pytest.fixture
def cp():
    return compile_text(POLICY.format(margin="25%"))


def test_defaults_are_near_limits_and_25_percent():
    plain = compile_text("version: 1\nprofiles: {a: {candidates: [{model: gemini-2.5-flash}]}}\ndefault_profile: a\n")
    assert plain.count_tokens == "near_limits" and plain.count_margin == Decimal(25)


def test_short_text_requests_are_not_counted(cp):
    assert count_trigger(cp, f(2_000), StateSnapshot()) is None
    assert count_trigger(cp, f(120_000), StateSnapshot()) is None  # below 200,000 / 1.25 and 163,840 / 1.25


def test_the_tier_boundary_window_is_limit_over_or_times_one_plus_margin(cp):
    reason, model = count_trigger(cp, f(160_000), StateSnapshot())
    assert model == "gemini-2.5-pro" and "long-context boundary (200,000 tokens)" in reason
    assert count_trigger(cp, f(250_000), StateSnapshot())[1] == "gemini-2.5-pro"
    # 250,001 is past the window of the 200K boundary, and not yet near the 1M context window
    assert count_trigger(cp, f(250_001, max_tokens=1), StateSnapshot()) is None


def test_a_context_window_near_the_estimate_triggers(cp):
    # deepseek-v3.1: 163,840-token window; prompt + max_tokens = 131,072 + 1,000 is within 25 % of it
    reason, model = count_trigger(cp, f(131_072, max_tokens=1000), StateSnapshot())
    assert model == "deepseek-v3.1" and "context window (163,840 tokens)" in reason


def test_a_profile_a_budget_action_can_switch_to_is_checked_too(cp):
    # gemini-1.0-pro (profile cheap, reachable by the tenant budget's switch): 32,760-token window
    assert count_trigger(cp, f(30_000, max_tokens=1000), StateSnapshot()) is None  # no tenant: no budget, no switch
    assert count_trigger(cp, f(30_000, max_tokens=1000, tenant="acme"), StateSnapshot(spend={"tenant:acme": "0"}))[1] == "gemini-1.0-pro"


def test_budget_headroom_within_the_margin_of_the_upper_bound(cp):
    # worst rates of profile a: gemini-2.5-pro long tier, $2.50 in / $15 out per 1M:
    # 10,000 x 2.5/1M + 1,000 x 15/1M = $0.04 upper bound; x 1.25 = $0.05
    features = f(10_000, max_tokens=1000, tenant="acme")
    assert count_trigger(cp, features, StateSnapshot(spend={"tenant:acme": "0.94"})) is None  # $0.06 left
    reason, model = count_trigger(cp, features, StateSnapshot(spend={"tenant:acme": "0.95"}))  # $0.05 left
    assert model is None and "budget tenant:acme" in reason and "$0.05 left" in reason
    assert count_trigger(cp, features, StateSnapshot(spend={"tenant:acme": "1"})) is None  # nothing left: a count cannot help


def test_non_text_parts_always_trigger(cp):
    reason, model = count_trigger(cp, f(600, caps=frozenset({"vision"})), StateSnapshot())
    assert "non-text parts (vision)" in reason and model is None


def test_the_margin_is_configurable(cp):
    narrow = compile_text(POLICY.format(margin="5"))
    assert count_trigger(narrow, f(180_000), StateSnapshot()) is None  # 200,000 / 1.05 = 190,476
    assert count_trigger(narrow, f(190_477), StateSnapshot()) is not None
    assert with_margin(190_000, Decimal(25)) == 237_500 and with_margin(3, Decimal("33.4")) == 5


def test_the_count_is_made_for_a_countable_candidate(cp):
    assert count_target(cp, f(1000), ["deepseek-v3.1", "gemini-2.5-pro"]).id == "gemini-2.5-pro"
    assert count_target(cp, f(1000), []).id == "gemini-2.5-pro"  # first countable candidate of the profile
    only_partners = compile_text("version: 1\nprofiles: {a: {candidates: [{model: deepseek-v3.1}]}}\ndefault_profile: a\n")
    assert count_target(only_partners, f(1000), []) is None


@pytest.mark.parametrize(("setting", "needle"), [("count_tokens: sometimes", "count_tokens"), ("count_tokens_margin: -5", "count_tokens_margin"), ("count_tokens_margin: lots", "count_tokens_margin")])
def test_bad_settings_name_the_field(setting, needle):
    with pytest.raises(PolicyError) as exc:
        compile_text(f"version: 1\nsettings:\n  {setting}\nprofiles: {{a: {{candidates: [{{model: gemini-2.5-flash}}]}}}}\ndefault_profile: a\n")
    assert needle in str(exc.value) and "p.yaml:3" in str(exc.value)
