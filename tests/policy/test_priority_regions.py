"""Priority PayGo (global endpoint, under the cap and the ramp limit) and region residency."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from router.policy import RequestFeatures, StateSnapshot, compile_policy, load_policy
from tests.policy.conftest import DAY, POLICIES, compile_text, feats, priced_catalog

PRIO = """
version: 1
candidates:
  - {model: gemini-2.5-flash, priority: true}
  - {model: gemini-2.5-flash-lite, priority: true, location: us-central1}
profiles: {p: {objective: best_quality}}
default_profile: p
priority: {max_tokens_per_minute: 100000}
"""
PRICED = priced_catalog()


def test_priority_for_latency_sensitive_on_global():
    cp = compile_text(catalog=PRICED, text=PRIO)
    assert cp.ramp_families == ["flash", "flash-lite"]
    d = cp.decide(feats(latency_sensitive=True))
    assert d.primary.model == "gemini-2.5-flash" and d.primary.location == "global" and d.primary.priority
    assert any("Priority PayGo on the global endpoint" in n for n in d.notes)
    unpriced = compile_text(PRIO).decide(feats(latency_sensitive=True))
    assert not unpriced.primary.priority and any("no Priority PayGo price" in n for n in unpriced.notes)
    # the regional fallback never gets priority
    assert d.fallbacks[0].location == "us-central1" and not d.fallbacks[0].priority
    assert not cp.decide(feats()).primary.priority


def test_priority_cap_and_ramp_limit():
    cp = compile_text(catalog=PRICED, text=PRIO)
    under = StateSnapshot(ramp={"flash": (98_500, 4_000_000)})
    assert cp.decide(feats(latency_sensitive=True), under).primary.priority  # 98,500 + 1,500 = 100,000
    over = StateSnapshot(ramp={"flash": (98_501, 4_000_000)})
    d = cp.decide(feats(latency_sensitive=True), over)
    assert not d.primary.priority and any("policy cap" in n for n in d.notes)
    ramp = StateSnapshot(ramp={"flash": (10_000, 11_000)})
    d = cp.decide(feats(latency_sensitive=True), ramp)
    assert not d.primary.priority and any("ramp limit" in n for n in d.notes)


def test_priority_disabled():
    cp = compile_text(catalog=PRICED, text=PRIO.replace("priority: {max_tokens_per_minute: 100000}", "priority: {enabled: false}"))
    assert not cp.decide(feats(latency_sensitive=True)).primary.priority
    assert cp.ramp_families == []


EU_REGION = ("europe-",)


@settings(max_examples=150, deadline=None)
@given(
    prompt=st.integers(0, 300_000),
    max_tokens=st.integers(1, 8192),
    latency=st.booleans(),
    app=st.sampled_from([None, "legal", "chat"]),
    caps=st.sets(st.sampled_from(["vision", "tools", "json_output"])),
)
def test_eu_only_never_leaves_europe(prompt, max_tokens, latency, app, caps):
    from router.catalog import default_catalog
    from router.errors import NoEligibleModelError

    catalog = default_catalog()
    cp = _eu(catalog)
    f = RequestFeatures(app=app, prompt_tokens=prompt, max_tokens=max_tokens, latency_sensitive=latency, required_capabilities=frozenset(caps), at=DAY)
    try:
        d = cp.decide(f, StateSnapshot.empty())
    except NoEligibleModelError:
        return
    for choice in d.choices:
        assert choice.location.startswith(EU_REGION), choice
        assert not choice.priority


_EU = {}


def _eu(catalog):
    if "cp" not in _EU:
        _EU["cp"] = compile_policy(load_policy(POLICIES / "eu-only.yaml", catalog), catalog)
    return _EU["cp"]


def test_eu_only_example(catalog):
    cp = _eu(catalog)
    d = cp.decide(feats())
    assert d.profile == "eu" and d.primary.location.startswith("europe-")
    premium = cp.decide(feats(app="legal"))
    assert premium.profile == "eu-premium" and premium.primary.location in ("europe-west1", "europe-west4")
    considered = {m for m, _ in d.rejected} | {c["model"] for c in cp.explain(feats())["candidates"]}
    assert "deepseek-v3.2" not in considered  # served on the global endpoint only: never a candidate
    assert dict(d.rejected)["gemini-1.5-pro"] == "lifecycle deprecated is excluded"


def test_explicit_location_preference():
    cp = compile_text(
        "version: 1\ncandidates: [{model: claude-sonnet-4-5, location: [asia-east1, global]}]\nprofiles: {p: {constraints: {regions: [global, eu]}}}\ndefault_profile: p\n"
    )
    assert cp.decide(feats()).primary.location == "global"
    cp = compile_text("version: 1\ncandidates: [{model: claude-sonnet-4-5, location: asia-east1}]\nprofiles: {p: {}}\ndefault_profile: p\n")
    assert cp.decide(feats()).primary.location == "asia-east1"


def test_date_is_respected():
    cp = compile_text("version: 1\ncandidates: [{model: gemini-2.5-flash}]\nprofiles: {p: {}}\ndefault_profile: p\n")
    assert cp.decide(feats(at=dt.date(2026, 3, 1))).primary.model == "gemini-2.5-flash"
