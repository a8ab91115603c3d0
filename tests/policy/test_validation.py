"""`load_policy` / `router validate` problems: every error class with its exact file:line:column."""

from __future__ import annotations

import textwrap

import pytest

from router.errors import PolicyError
from router.policy import load_policy

BASE = """\
version: 1
profiles:
  cheap:
    objective: cheapest
default_profile: cheap
"""


def problems(text: str, catalog, name: str = "p.yaml"):
    with pytest.raises(PolicyError) as info:
        load_policy(textwrap.dedent(text), catalog, filename=name)
    return info.value.problems


def test_valid_minimal(catalog):
    policy = load_policy(BASE, catalog, filename="p.yaml")
    assert policy.default_profile == "cheap"
    assert policy.filename == "p.yaml"


def test_yaml_syntax_error_position(catalog):
    text = "version: 1\nprofiles:\n  cheap: {objective: cheapest\ndefault_profile: cheap\n"
    (p,) = problems(text, catalog)
    assert p[0] == "p.yaml"
    assert (p[1], p[2]) == (3, 10)  # where the unclosed '{' opens, not where the parser gave up
    assert "syntax" in p[3].lower() and "never closed" in p[3]


def test_duplicate_key_is_an_error(catalog):
    (p,) = problems(BASE + "default_profile: cheap\n", catalog)
    assert (p[1], p[2]) == (6, 1)
    assert "duplicate key" in p[3]


def test_unknown_key_with_suggestion(catalog):
    text = BASE.replace("    objective: cheapest\n", "    objective: cheapest\n    constraint:\n      min_quality: 50\n")
    (p,) = problems(text, catalog)
    assert (p[1], p[2]) == (5, 5)
    assert "unknown key 'constraint'" in p[3] and "did you mean 'constraints'" in p[3]


def test_unknown_top_level_key(catalog):
    (p,) = problems(BASE + "budget: []\n", catalog)
    assert (p[1], p[2]) == (6, 1)
    assert "unknown key 'budget'" in p[3] and "'budgets'" in p[3]


def test_missing_version(catalog):
    (p,) = problems(BASE.replace("version: 1\n", ""), catalog)
    assert (p[1], p[2]) == (1, 1)
    assert "missing required key 'version'" in p[3]


def test_unsupported_version(catalog):
    (p,) = problems(BASE.replace("version: 1", "version: 2"), catalog)
    assert (p[1], p[2]) == (1, 1)
    assert "unsupported policy version 2" in p[3]


def test_unknown_model_with_closest_ids(catalog):
    text = BASE + "candidates:\n  - model: gemini-2.5-flsh\n"
    (p,) = problems(text, catalog)
    assert (p[1], p[2]) == (7, 5)
    assert "unknown model 'gemini-2.5-flsh'" in p[3]
    assert "gemini-2.5-flash" in p[3]


def test_unknown_model_in_profile_candidates(catalog):
    text = """\
    version: 1
    profiles:
      a:
        candidates:
          - model: gemini-2.5-flash
          - model: claude-sonet-4-5
    default_profile: a
    """
    (p,) = problems(text, catalog)
    assert (p[1], p[2]) == (6, 9)
    assert "claude-sonnet-4-5" in p[3]


@pytest.mark.parametrize(
    ("snippet", "line", "col", "needle"),
    [
        ("budgets:\n  - {scope: tenant, window: month, limit_usd: abc}\n", 7, 36, "not a number"),
        ("budgets:\n  - {scope: tenant, window: month, limit_usd: -5}\n", 7, 36, "positive"),
        ("budgets:\n  - {scope: tenant, window: fortnight, limit_usd: 5}\n", 7, 21, "window"),
        ("budgets:\n  - {scope: tenant, window: month@Mars/Base, limit_usd: 5}\n", 7, 21, "unknown time zone"),
        ("budgets:\n  - scope: team\n    window: month\n    limit_usd: 5\n", 7, 5, "invalid scope"),
        ("settings:\n  default_max_tokens: 0\n", 7, 3, "greater than 0"),
        ("settings:\n  expected_output_ratio: 1.5\n", 7, 3, "expected_output_ratio"),
        ("fallbacks:\n  max: many\n", 7, 3, "integer"),
        ("budgets:\n  - scope: tenant\n    window: month\n    limit_usd: 5\n    actions:\n      - at_percent: 0\n        refuse: true\n", 11, 9, "at_percent"),
        ("budgets:\n  - scope: tenant\n    window: month\n    limit_usd: 5\n    actions:\n      - at_percent: 80\n", 11, 9, "needs one of"),
    ],
)
def test_bad_numbers_and_values(catalog, snippet, line, col, needle):
    found = problems(BASE + snippet, catalog)
    assert any((p[1], p[2]) == (line, col) and needle in p[3] for p in found), found


def test_min_quality_out_of_range(catalog):
    text = BASE.replace("    objective: cheapest\n", "    objective: cheapest\n    constraints:\n      min_quality: 120\n")
    (p,) = problems(text, catalog)
    assert (p[1], p[2]) == (6, 7)
    assert "between 0 and 100" in p[3]


def test_unknown_profile_references(catalog):
    text = BASE + (
        "rules:\n"
        "  - name: r\n"
        "    when: {tenant: acme}\n"
        "    profile: cheep\n"
        "budgets:\n"
        "  - scope: global\n"
        "    window: 24h\n"
        "    limit_usd: 10\n"
        "    actions:\n"
        "      - at_percent: 80\n"
        "        switch_profile: nope\n"
    )
    found = problems(text, catalog)
    assert [(p[1], p[2]) for p in found] == [(9, 5), (16, 9)]
    assert "unknown profile 'cheep'; did you mean 'cheap'?" in found[0][3]
    assert "unknown profile 'nope'" in found[1][3]


def test_unknown_default_profile(catalog):
    (p,) = problems(BASE.replace("default_profile: cheap", "default_profile: other"), catalog)
    assert (p[1], p[2]) == (5, 1)


def test_rule_with_impossible_range(catalog):
    text = BASE + "rules:\n  - name: r\n    when:\n      prompt_tokens: {min: 5000, max: 100}\n    profile: cheap\n"
    (p,) = problems(text, catalog)
    assert (p[1], p[2]) == (8, 5)
    assert "can never match" in p[3] and "min 5,000 > max 100" in p[3]


def test_rule_with_empty_list(catalog):
    text = BASE + "rules:\n  - name: r\n    when: {tenant: []}\n    profile: cheap\n"
    (p,) = problems(text, catalog)
    assert (p[1], p[2]) == (8, 5) and "tenant list is empty" in p[3]


def test_rule_shadowed_by_earlier_rule(catalog):
    text = BASE + (
        "rules:\n"
        "  - name: all-acme\n"
        "    when: {tenant: [acme, globex]}\n"
        "    profile: cheap\n"
        "  - name: acme-search\n"
        "    when: {tenant: acme, app: search}\n"
        "    profile: cheap\n"
    )
    (p,) = problems(text, catalog)
    assert (p[1], p[2]) == (10, 5)
    assert "rule 'acme-search' can never match" in p[3] and "'all-acme' (line 7)" in p[3]


def test_rule_after_catch_all(catalog):
    text = BASE + "rules:\n  - name: any\n    profile: cheap\n  - name: later\n    when: {latency_sensitive: true}\n    profile: cheap\n"
    (p,) = problems(text, catalog)
    assert (p[1], p[2]) == (9, 5) and "'later' can never match" in p[3]


def test_rules_that_overlap_but_are_not_shadowed(catalog):
    text = BASE + (
        "rules:\n"
        "  - name: short\n"
        "    when: {prompt_tokens: {max: 1000}}\n"
        "    profile: cheap\n"
        "  - name: grounded-short\n"
        "    when: {prompt_tokens: {max: 5000}, grounding: true}\n"
        "    profile: cheap\n"
    )
    load_policy(text, catalog)


def test_profile_no_model_can_satisfy(catalog):
    text = """\
    version: 1
    profiles:
      cheap:
        objective: cheapest
      impossible:
        constraints:
          regions: [eu]
          min_quality: 95
    default_profile: cheap
    """
    (p,) = problems(text, catalog)
    assert (p[1], p[2]) == (5, 3)
    assert "profile 'impossible': no catalog model can satisfy it" in p[3]


def test_selector_matching_nothing(catalog):
    text = BASE + "candidates:\n  - select: {publisher: meta, min_quality: 90}\n"
    (p,) = problems(text, catalog)
    assert (p[1], p[2]) == (7, 5) and "selector matches no catalog model" in p[3]


def test_unknown_region(catalog):
    text = BASE.replace("    objective: cheapest\n", "    constraints:\n      regions: [europe-west99]\n")
    (p,) = problems(text, catalog)
    assert (p[1], p[2]) == (5, 17)
    assert "unknown region 'europe-west99'" in p[3]


def test_location_not_served(catalog):
    text = BASE + "candidates:\n  - model: claude-opus-4-5\n    location: us-central1\n"
    (p,) = problems(text, catalog)
    assert (p[1], p[2]) == (8, 5) and "not served in 'us-central1'" in p[3]


def test_priority_on_non_gemini_model(catalog):
    text = BASE + "candidates:\n  - model: claude-haiku-4-5\n    priority: true\n"
    (p,) = problems(text, catalog)
    assert (p[1], p[2]) == (8, 5) and "Priority PayGo" in p[3]


def test_candidate_needs_model_or_select(catalog):
    (p,) = problems(BASE + "candidates:\n  - location: global\n", catalog)
    assert (p[1], p[2]) == (7, 5) and "exactly one of 'model' or 'select'" in p[3]


def test_many_problems_are_all_reported_sorted(catalog):
    text = BASE + "candidates:\n  - model: nope-1\n  - model: nope-2\n"
    found = problems(text, catalog)
    assert [(p[1], p[2]) for p in found] == [(7, 5), (8, 5)]


def test_file_source_and_missing_file(tmp_path, catalog):
    path = tmp_path / "x.yaml"
    path.write_text(BASE + "extra: 1\n", encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(path, catalog)
    assert str(info.value).startswith(f"{path}:6:1: unknown key 'extra'")
    with pytest.raises(PolicyError) as info:
        load_policy(str(tmp_path / "missing.yaml"), catalog)
    assert "policy file not found" in str(info.value)


def test_dict_source_and_yaml_on_key(catalog):
    import yaml

    data = yaml.safe_load(BASE + "fallbacks:\n  on: [timeout]\n")
    policy = load_policy(data, catalog)
    assert policy.fallbacks.retry_on == ["timeout"]
    assert policy.source_text is None


def test_empty_and_non_mapping(catalog):
    assert "empty policy" in problems("", catalog)[0][3]
    assert "mapping" in problems("- 1\n- 2\n", catalog)[0][3]


def test_money_is_decimal_from_literal(catalog):
    from decimal import Decimal

    policy = load_policy(BASE + "budgets:\n  - {scope: global, window: 24h, limit_usd: 0.1}\n", catalog)
    assert policy.budgets[0].limit_usd == Decimal("0.1")
    policy = load_policy(BASE + "budgets:\n  - {scope: global, window: 24h, limit_usd: \"$12.50\"}\n", catalog)
    assert policy.budgets[0].limit_usd == Decimal("12.50")


def test_every_semantic_problem_of_a_file_is_reported(catalog):
    text = """\
    version: 1
    profiles:
      cheap:
        objective: cheapest
      eu:
        constraints: {regions: [europe-west99]}
    default_profile: cheep
    candidates:
      - model: gemini-2.5-flsh
    rules:
      - {name: all, when: {tenant: [a, b]}, profile: cheap}
      - {name: a, when: {tenant: a, app: x}, profile: cheap}
    """
    found = problems(text, catalog)
    assert [(p[1], p[2]) for p in found] == [(6, 29), (7, 1), (9, 5), (12, 5)]
    assert "unknown region" in found[0][3] and "unknown profile 'cheep'" in found[1][3]
    assert "unknown model" in found[2][3] and "can never match" in found[3][3]
