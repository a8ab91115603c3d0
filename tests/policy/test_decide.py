"""Decision semantics: rules, constraints, objectives, cost estimates, fallbacks."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from router.errors import NoEligibleModelError
from router.policy import RequestFeatures, StateSnapshot, estimate_prompt_tokens
from tests.policy.conftest import compile_text, feats

ALL_CHEAPEST = """
version: 1
profiles:
  cheap: {objective: cheapest}
default_profile: cheap
"""


def test_rule_order_first_match_wins():
    cp = compile_text(
        """
        version: 1
        profiles:
          a: {objective: cheapest}
          b: {objective: best_quality}
          c: {objective: quality_per_dollar}
        rules:
          - name: acme-search
            when: {tenant: acme, app: search}
            profile: b
          - name: acme
            when: {tenant: acme}
            profile: c
        default_profile: a
        """
    )
    assert (cp.decide(feats(tenant="acme", app="search")).rule, cp.decide(feats(tenant="acme", app="search")).profile) == ("acme-search", "b")
    assert cp.decide(feats(tenant="acme", app="chat")).profile == "c"
    d = cp.decide(feats(tenant="globex"))
    assert (d.rule, d.profile) == (None, "a")


@pytest.mark.parametrize(
    ("when", "match", "miss"),
    [
        ("{tags: {team: [ml, ai]}}", dict(tags={"team": "ml"}), dict(tags={"team": "web"})),
        ("{task: summarise}", dict(task="summarise"), dict(task="chat")),
        ("{prompt_tokens: {min: 1000, max: 2000}}", dict(prompt_tokens=2000), dict(prompt_tokens=2001)),
        ("{prompt_tokens: {min: 1000}}", dict(prompt_tokens=1000), dict(prompt_tokens=999)),
        ("{grounding: true}", dict(grounding="google_search"), dict()),
        ("{grounding: false}", dict(), dict(grounding="google_search")),
        ("{grounding: google_maps}", dict(grounding="google_maps"), dict(grounding="google_search")),
        ("{latency_sensitive: true}", dict(latency_sensitive=True), dict()),
        ("{app: [a, b]}", dict(app="b"), dict(app="c")),
    ],
)
def test_rule_attributes(when, match, miss):
    cp = compile_text(
        f"""
        version: 1
        profiles:
          base: {{objective: cheapest}}
          special: {{objective: best_quality}}
        rules:
          - name: r
            when: {when}
            profile: special
        default_profile: base
        """
    )
    assert cp.decide(feats(**match)).profile == "special"
    assert cp.decide(feats(**miss)).profile == "base"


def test_cheapest_matches_the_cost_engine(catalog):
    cp = compile_text(ALL_CHEAPEST)
    d = cp.decide(feats(prompt_tokens=3000, max_tokens=1000))
    # By hand from seed 000 (3,000 prompt tokens, 500 expected output tokens = half of max_tokens):
    # gpt-oss-20b $0.07 / $0.25 per 1M: 3,000 x 0.07 + 500 x 0.25 = 335 -> $0.000335;
    # gemini-2.0-flash-lite $0.075 / $0.30: 225 + 150 = 375 -> $0.000375; gemini-1.5-flash (characters,
    # 4 a token) $0.00001875 / $0.000075 per 1K: 12,000 x 0.00001875 / 1K + 2,000 x 0.000075 / 1K = $0.000375
    # (a tie with 2.0 Flash-Lite: both unscored, list order decides).
    assert [(c.model, c.estimated_cost) for c in d.choices] == [
        ("gpt-oss-20b", Decimal("0.000335")),
        ("gemini-2.0-flash-lite", Decimal("0.000375")),
        ("gemini-1.5-flash", Decimal("0.000375")),
    ]


# Upper bounds by hand from the seeds: prompt x input rate + 2,000 max_tokens x output rate (long tier when the
# prompt crosses the model's threshold). Seed 000: gemini-2.5-pro 1.25 / 10, > 200K 2.5 / 15 per 1M;
# claude-sonnet-4-5 3 / 15, >= 200K 6 / 22.50; deepseek-v3.2 0.56 / 1.68; gemini-3-flash-preview 0.5 / 3 (both
# tiers). gemini-1.5-pro: per 1K characters (4 a token) 0.0003125 / 0.00125, > 128K tokens 0.000625 / 0.0025.
UPPER_BOUNDS = {
    ("gemini-2.5-pro", 10): "0.0200125",  # 12.5 + 20,000 per 1M
    ("gemini-2.5-pro", 150_000): "0.2075",  # 187,500 + 20,000
    ("gemini-2.5-pro", 250_000): "0.655",  # 625,000 + 30,000
    ("gemini-1.5-pro", 10): "0.0100125",  # 40 chars x 0.0003125 / 1K + 8,000 chars x 0.00125 / 1K
    ("gemini-1.5-pro", 150_000): "0.395",  # 600,000 x 0.000625 / 1K + 8,000 x 0.0025 / 1K
    ("gemini-1.5-pro", 250_000): "0.645",  # 1,000,000 x 0.000625 / 1K + 0.02
    ("claude-sonnet-4-5", 10): "0.03003",  # 30 + 30,000 per 1M
    ("claude-sonnet-4-5", 150_000): "0.48",  # 450,000 + 30,000
    ("claude-sonnet-4-5", 250_000): "1.545",  # 1,500,000 + 45,000
    ("deepseek-v3.2", 10): "0.0033656",  # 5.6 + 3,360
    ("deepseek-v3.2", 150_000): "0.08736",  # 84,000 + 3,360
    ("deepseek-v3.2", 250_000): None,  # 252,000 tokens > its 163,840-token window
    ("gemini-3-flash-preview", 10): "0.006005",  # 5 + 6,000
    ("gemini-3-flash-preview", 150_000): "0.081",  # 75,000 + 6,000
    ("gemini-3-flash-preview", 250_000): "0.131",  # 125,000 + 6,000
}


@pytest.mark.parametrize("model", ["gemini-2.5-pro", "gemini-1.5-pro", "claude-sonnet-4-5", "deepseek-v3.2", "gemini-3-flash-preview"])
@pytest.mark.parametrize("prompt", [10, 150_000, 250_000])
def test_upper_bound_equals_cost_engine(catalog, model, prompt):
    cp = compile_text(f"version: 1\ncandidates: [{{model: {model}}}]\nprofiles: {{p: {{}}}}\ndefault_profile: p\n")
    expected = UPPER_BOUNDS[(model, prompt)]
    if expected is None:
        with pytest.raises(NoEligibleModelError):
            cp.decide(feats(prompt_tokens=prompt, max_tokens=2000))
        return
    d = cp.decide(feats(prompt_tokens=prompt, max_tokens=2000))
    assert d.primary.upper_bound_cost == Decimal(expected)
    assert d.primary.estimated_cost <= d.primary.upper_bound_cost


def test_context_window_fit(catalog):
    cp = compile_text(ALL_CHEAPEST)
    d = cp.decide(feats(prompt_tokens=199_500, max_tokens=1000))
    reasons = dict(d.rejected)
    assert reasons["claude-haiku-4-5"] == "context window 200,000 < prompt 199,500 + max_tokens 1,000 tokens"
    for choice in d.choices:
        assert catalog.get(choice.model).context_window >= 200_500
    # exactly fitting is fine
    d = cp.decide(feats(prompt_tokens=199_000, max_tokens=1000))
    assert "claude-haiku-4-5" not in dict(d.rejected)


def test_context_fit_can_be_disabled():
    cp = compile_text(
        "version: 1\ncandidates: [{model: claude-haiku-4-5}]\nprofiles: {p: {constraints: {context_fit: false}}}\ndefault_profile: p\n"
    )
    assert cp.decide(feats(prompt_tokens=199_500, max_tokens=1000)).primary.model == "claude-haiku-4-5"


def test_max_tokens_above_model_output_limit():
    cp = compile_text(ALL_CHEAPEST)
    d = cp.decide(feats(max_tokens=20_000))
    assert "max output 8,192" in dict(d.rejected)["gemini-2.0-flash-lite"]


def test_capability_filter(catalog):
    cp = compile_text(ALL_CHEAPEST)
    d = cp.decide(feats(required_capabilities=frozenset({"vision", "tools"})))
    for choice in d.choices:
        assert {"vision", "tools"} <= set(catalog.get(choice.model).capabilities)
    assert dict(d.rejected)["deepseek-v3.2"] == "lacks capability vision"


def test_profile_capabilities_and_lifecycle_and_quality(catalog):
    cp = compile_text(
        """
        version: 1
        profiles:
          p:
            constraints:
              capabilities: [thinking]
              exclude_lifecycles: [preview, deprecated]
              min_quality: 60
        default_profile: p
        """
    )
    d = cp.decide(feats())
    reasons = dict(d.rejected)
    assert reasons["gemini-3-pro-preview"] == "lifecycle preview is excluded"
    assert reasons["mistral-ocr-2505"].startswith("lacks capability thinking") or "no quality" in reasons["mistral-ocr-2505"]
    assert reasons["llama-3.1-405b"].startswith(("no quality score", "lacks capability"))
    for choice in d.choices:
        m = catalog.get(choice.model)
        assert m.lifecycle == "ga" and "thinking" in m.capabilities and m.quality.score >= 60


def test_max_cost_constraint():
    cp = compile_text(
        "version: 1\nprofiles: {p: {objective: best_quality, constraints: {max_cost_usd: '0.001'}}}\ndefault_profile: p\n"
    )
    d = cp.decide(feats(prompt_tokens=1000, max_tokens=500))
    assert all(c.estimated_cost <= Decimal("0.001") for c in d.choices)
    assert any("> max $0.001 per request" in r for _, r in d.rejected)


def test_objectives():
    base = "version: 1\ncandidates:\n  - model: gemini-2.5-pro\n  - model: gemini-2.5-flash\n  - model: gemini-2.5-flash-lite\n  - model: claude-opus-4-5\nprofiles: {p: {objective: %s}}\ndefault_profile: p\n"
    assert compile_text(base % "cheapest").decide(feats()).primary.model == "gemini-2.5-flash-lite"
    assert compile_text(base % "best_quality").decide(feats()).primary.model == "claude-opus-4-5"
    qpd = compile_text(base % "quality_per_dollar").decide(feats())
    assert qpd.primary.model == "gemini-2.5-flash-lite"
    bounded = compile_text(base % "{type: best_quality, max_cost_usd: '0.004'}").decide(feats())
    assert bounded.primary.model == "gemini-2.5-pro"
    assert compile_text(base % "{type: weighted, quality_weight: 1, cost_weight: 0}").decide(feats()).primary.model == "claude-opus-4-5"
    assert compile_text(base % "{type: weighted, quality_weight: 0, cost_weight: 1}").decide(feats()).primary.model == "gemini-2.5-flash-lite"
    mid = compile_text(base % "{type: weighted, quality_weight: 1, cost_weight: 0.2}").decide(feats())
    assert mid.primary.model == "gemini-2.5-pro"


def test_fallbacks_distinct_ranked_and_listed():
    text = """
    version: 1
    candidates:
      - model: claude-opus-4-5
      - model: gemini-2.5-pro
      - model: gemini-2.5-flash
      - model: gemini-2.5-flash-lite
    profiles: {p: {objective: cheapest}}
    default_profile: p
    fallbacks: {max: 2, order: %s}
    """
    ranked = compile_text(text % "ranked").decide(feats())
    assert [c.model for c in ranked.choices] == ["gemini-2.5-flash-lite", "gemini-2.5-flash", "gemini-2.5-pro"]
    listed = compile_text(text % "listed").decide(feats())
    assert [c.model for c in listed.choices] == ["gemini-2.5-flash-lite", "claude-opus-4-5", "gemini-2.5-pro"]
    zero = compile_text((text % "ranked").replace("max: 2", "max: 0")).decide(feats())
    assert zero.fallbacks == []


def test_no_eligible_model_lists_every_rejection():
    cp = compile_text("version: 1\ncandidates: [{model: claude-haiku-4-5}, {model: gpt-oss-20b}]\nprofiles: {p: {}}\ndefault_profile: p\n")
    with pytest.raises(NoEligibleModelError) as info:
        cp.decide(feats(prompt_tokens=500_000))
    assert [m for m, _ in info.value.rejected] == ["claude-haiku-4-5", "gpt-oss-20b"]


def test_batch_profile_marks_batch_eligible_but_prices_online(catalog):
    """The router sends every request online (no Batch API jobs), so a batch-eligible choice is estimated,
    capped and ranked at the online rates it will be billed at."""
    text = """
    version: 1
    candidates:
      - {model: gemini-2.5-flash, batch: true}
    profiles:
      offline: {batch: true}
    default_profile: offline
    """
    cp = compile_text(text)
    d = cp.decide(feats())
    assert d.primary.batch is True
    # online gemini-2.5-flash (seed 000, $0.30 / $2.50 per 1M): 1,000 x 0.30 + 500 x 2.50 = 1,550 -> $0.00155
    assert d.primary.upper_bound_cost == Decimal("0.00155")
    assert cp.decide(feats(latency_sensitive=True)).primary.batch is False


def test_long_context_pricing(catalog):
    cp = compile_text("version: 1\ncandidates: [{model: gemini-2.5-pro}]\nprofiles: {p: {}}\ndefault_profile: p\n")
    short = cp.decide(feats(prompt_tokens=200_000, max_tokens=1000)).primary.upper_bound_cost
    long = cp.decide(feats(prompt_tokens=200_001, max_tokens=1000)).primary.upper_bound_cost
    # seed 000, gemini-2.5-pro: 200,000 x 1.25 + 1,000 x 10 per 1M = $0.26 (not > 200K: the short tier);
    # 200,001 x 2.5 + 1,000 x 15 = $0.5150025 (every token at the long rate)
    assert (short, long) == (Decimal("0.26"), Decimal("0.5150025"))


def test_decision_to_dict_is_json_ready():
    cp = compile_text(ALL_CHEAPEST)
    d = cp.decide(feats(tenant="acme", max_tokens=20_000))
    data = json.loads(json.dumps(d.to_dict()))
    assert data["model"] == d.primary.model
    assert data["estimated_cost_usd"] == str(d.primary.estimated_cost.normalize()) or Decimal(data["estimated_cost_usd"]) == d.primary.estimated_cost
    assert data["fallbacks"] == [c.model for c in d.fallbacks]
    assert {"model", "reason"} == set(data["rejected"][0])
    assert data["policy_version"] == cp.version and len(cp.version) == 12


def test_policy_version_none_for_dict(catalog):
    import yaml

    from router.policy import compile_policy

    cp = compile_policy(yaml.safe_load(ALL_CHEAPEST), catalog)
    assert cp.version is None
    assert cp.decide(feats()).policy_version is None


def test_missing_price_on_date_is_a_rejection():
    import datetime as dt

    cp = compile_text("version: 1\ncandidates: [{model: gemini-3-flash-preview}, {model: gemini-2.5-flash}]\nprofiles: {p: {}}\ndefault_profile: p\n")
    d = cp.decide(feats(at=dt.date(2020, 1, 1)))
    assert d.primary.model == "gemini-2.5-flash" or d.rejected


def test_estimate_prompt_tokens():
    assert estimate_prompt_tokens([]) == 0
    assert estimate_prompt_tokens([{"role": "user", "content": "x" * 400}]) == 3 + 4 + 100
    assert estimate_prompt_tokens([{"role": "user", "content": "abcde"}]) == 3 + 4 + 2
    parts = [{"type": "text", "text": "y" * 40}, {"type": "image_url", "image_url": {"url": "data:..."}}]
    assert estimate_prompt_tokens([{"role": "user", "content": parts}]) == 3 + 4 + 10 + 258


def test_capabilities_from():
    msgs = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "x"}}]},
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]},
    ]
    caps = RequestFeatures.capabilities_from(msgs, {"tools": [{"type": "function"}], "response_format": {"type": "json_object"}})
    assert caps == frozenset({"vision", "audio", "tools", "json_output"})
    assert RequestFeatures.capabilities_from([{"role": "user", "content": "hi"}], {}) == frozenset()


def test_state_snapshot_from_ledger():
    import datetime as dt

    from router.ledger.types import BudgetScope, LedgerSnapshot, PoolUsage, RampUsage, Window

    b = BudgetScope("tenant:acme", Window("calendar", "month", "UTC"), Decimal(10))
    snap = LedgerSnapshot(
        spend={b.id: Decimal("8")},
        pools={"gemini-2x-flash-search-daily": PoolUsage("gemini-2x-flash-search-daily", 1500, 1500, dt.datetime(2026, 1, 1))},
        ramp={"flash": RampUsage("flash", 100, 6_000_000)},
    )
    s = StateSnapshot.from_ledger(snap, [b])
    assert s.spend_for(b.id, b.scope) == Decimal(8)
    assert s.pools == {"gemini-2x-flash-search-daily": 1500}
    assert s.ramp_for("flash").limit_tpm == 6_000_000
    assert s.ramp_for("pro").limit_tpm == 1_000_000
    assert StateSnapshot.empty().spend == {}


def test_decide_accepts_a_ledger_snapshot_and_none_tags():
    from router.ledger.types import LedgerSnapshot

    cp = compile_text(
        "version: 1\nprofiles: {p: {}, q: {}}\nrules: [{name: t, when: {tags: {a: b}}, profile: q}]\ndefault_profile: p\n"
        "budgets: [{scope: tenant, window: month, limit_usd: 1, actions: [{at_percent: 50, switch_profile: q}]}]\n"
    )
    d = cp.decide(feats(tenant="x"), LedgerSnapshot(spend={"tenant:x|calendar:month@UTC": Decimal("0.6")}))
    assert d.profile == "q" and d.actions
    assert cp.decide(feats(tags=None)).profile == "p"


def test_the_engines_fast_choice_equals_the_public_constructor_field_for_field():
    """decide builds its Choices without the frozen dataclass's per-field setattr: the result must be the
    same object the constructor makes (every field, in order; equal and hashing alike; still frozen)."""
    import dataclasses

    from router.policy.decide import Choice, _new_choice

    values = ("gemini-2.5-flash", "global", True, False, "google_search", Decimal("0.25"), Decimal("0.5"), Decimal("81.5"), 3, None)
    fast, public = _new_choice(*values), Choice(*values)
    assert fast == public and hash(fast) == hash(public)
    assert dataclasses.astuple(fast) == values
    assert [f.name for f in dataclasses.fields(Choice)] == list(vars(fast))
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.model = "other"  # type: ignore[misc]
