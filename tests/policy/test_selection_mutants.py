"""Which models a policy's selectors pick and where a candidate is sent (issue 12, survivors of the full mutmut
run of router/policy/selection.py). Catalog facts (seed model cards): Claude 3.5 Haiku is GA, both Claude 3.5
Sonnets are deprecated; Codestral 2 has exactly one capability, tools; the Gemini 3 previews are served on the
global endpoint only."""

from __future__ import annotations

from tests.policy.conftest import compile_text, feats
from tests.policy.test_decide_boundaries import one_profile


def test_a_lifecycle_selector_picks_only_models_of_that_lifecycle():
    cp = compile_text(one_profile("{objective: cheapest, fallbacks: 5, candidates: [{select: {family: claude-3.5, lifecycle: [ga]}}]}"))
    d = cp.decide(feats())
    assert [c.model for c in d.choices] == ["claude-3-5-haiku"]
    assert d.rejected == []  # the deprecated Sonnets are not candidates at all


def test_a_capability_selector_picks_a_model_with_exactly_those_capabilities():
    cp = compile_text(one_profile("{objective: cheapest, fallbacks: 5, candidates: [{select: {family: codestral, lifecycle: [ga], capabilities: [tools]}}]}"))
    assert [c.model for c in cp.decide(feats()).choices] == ["codestral-2"]


REGIONS = ("version: 1\nprofiles:\n  p: {fallbacks: 2, constraints: {regions: [%s]}, candidates: [{model: gemini-2.5-pro, "
           "location: [us-central1, us-east1]}, {model: gemini-2.5-flash}]}\ndefault_profile: p\n")


def test_a_candidate_whose_chosen_locations_are_outside_the_allowed_regions_says_which_it_asked_for():
    d = compile_text(REGIONS % "europe-west4").decide(feats())
    assert [(c.model, c.location) for c in d.choices] == [("gemini-2.5-flash", "europe-west4")]
    assert d.rejected == [("gemini-2.5-pro", "no endpoint in the allowed regions (europe-west4); available: us-central1, us-east1")]
    # the second location asked for is allowed: the candidate is sent there
    d = compile_text(REGIONS % "us-east1").decide(feats())
    assert sorted((c.model, c.location) for c in d.choices) == [("gemini-2.5-flash", "us-east1"), ("gemini-2.5-pro", "us-east1")]


def test_without_a_location_preference_global_comes_before_the_catalog_s_first_region():
    # The seed catalog lists 'global' first wherever a model has it; a catalog (or overlay) listing a region
    # first must not move the default endpoint: global, else the first allowed region in catalog order.
    from router.catalog import default_catalog
    from router.policy.model import CandidateSpec, Selector
    from router.policy.selection import choose_location

    model = default_catalog().get("gemini-2.5-flash")
    model = model.model_copy(update={"regions": ["us-central1", "europe-west4", "global"]})
    entry = CandidateSpec(select=Selector())
    assert choose_location(entry, model, None) == "global"
    assert choose_location(entry, model, ["europe-west4", "us-central1"]) == "us-central1"


def test_explain_says_exactly_why_a_profile_rules_each_candidate_out():
    # The reasons `router explain` / `router validate` print (quality scores from the catalog: 2.5 Flash-Lite 50;
    # Claude Opus 4.5 has no audio or video input and is served on global, us-east5, europe-west1, asia-southeast1,
    # asia-east1).
    ruled_out = compile_text(
        "version: 1\nprofiles:\n  p: {fallbacks: 3, constraints: {exclude_models: [gemini-2.5-pro], min_quality: 60, "
        "capabilities: [audio, video]}, candidates: [{model: gemini-2.5-pro}, {model: gemini-2.5-flash-lite}, "
        "{model: claude-opus-4-5}, {model: gemini-2.5-flash}]}\ndefault_profile: p\n").decide(feats())
    assert ruled_out.rejected == [
        ("gemini-2.5-pro", "excluded by the profile (exclude_models)"),
        ("gemini-2.5-flash-lite", "quality 50 < 60"),
        ("claude-opus-4-5", "lacks capability audio, video"),
    ]
    elsewhere = compile_text(
        "version: 1\nprofiles:\n  p: {fallbacks: 3, constraints: {regions: [europe-west4, asia-northeast1]}, "
        "candidates: [{model: claude-opus-4-5}, {model: gemini-2.5-flash}]}\ndefault_profile: p\n").decide(feats())
    assert elsewhere.rejected == [("claude-opus-4-5", "no endpoint in the allowed regions (europe-west4, asia-northeast1); "
                                   "available: global, us-east5, europe-west1, asia-southeast1, asia-east1")]
