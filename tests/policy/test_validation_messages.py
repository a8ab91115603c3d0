"""Issue 11 item 13: bad policies found by mutating the examples one line at a time. Each gets a clear
error at ``file:line:column`` naming the key and the value, never a traceback and never a silent
acceptance; plus a sweep mutating every line of every example policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from router.catalog import default_catalog
from router.cli import get_app
from router.errors import PolicyError, RouterError
from router.policy import RequestFeatures, StateSnapshot, compile_policy, load_policy

ROOT = Path(__file__).resolve().parents[2]
BASE = "version: 1\nprofiles:\n  cheap:\n    objective: cheapest\ndefault_profile: cheap\n"
BUDGET = BASE + 'budgets:\n  - name: daily\n    scope: global\n    window: calendar:day@UTC\n    limit_usd: "5"\n'


def problems(text: str) -> list[tuple[str, int, int, str]]:
    with pytest.raises(PolicyError) as info:
        load_policy(text, default_catalog(), filename="p.yaml")
    return info.value.problems


def one(text: str) -> tuple[int, int, str]:
    (p,) = problems(text)
    assert p[0] == "p.yaml"
    return p[1], p[2], p[3]


def test_a_time_zone_folder_is_an_error_not_a_traceback(tmp_path):
    text = BUDGET.replace("calendar:day@UTC", "calendar:day@America")
    line, col, message = one(text)
    assert (line, col) == (9, 5)
    assert "unknown time zone 'America' (a folder of zones, not a zone)" in message
    path = tmp_path / "p.yaml"
    path.write_text(text)
    for args in (["validate", str(path)], ["explain", "--policy", str(path)]):
        result = CliRunner().invoke(get_app(), args)
        assert result.exit_code == 2, result.output  # 1 with a traceback
        assert f"{path}:9:5: budgets.0.window: unknown time zone 'America'" in result.output
    line, col, message = one(BASE + "settings:\n  quota_timezone: Europe\n")
    assert (line, col) == (7, 3) and "unknown time zone 'Europe'" in message


def test_an_empty_time_zone_is_an_error():
    line, col, message = one(BUDGET.replace("calendar:day@UTC", "calendar:day@"))
    assert (line, col) == (9, 5)
    assert "empty time zone after '@' in 'calendar:day@'" in message


@pytest.mark.parametrize("value", ["true", "false"])
def test_version_must_be_the_integer_one(value):
    line, col, message = one(BASE.replace("version: 1", f"version: {value}"))
    assert (line, col) == (1, 1)
    assert message == f"version: must be the integer 1, not {value}"


def test_an_unclosed_bracket_is_reported_where_it_opens():
    line, col, message = one(BASE.replace("default_profile: cheap\n", "candidates: [{model: gemini-2.5-flash}\ndefault_profile: cheap\n"))
    assert (line, col) == (5, 13)
    assert "this '[' is never closed" in message
    line, col, message = one(BASE.replace("    objective: cheapest\n", "    constraints: {min_quality: 40\n"))
    assert (line, col) == (4, 18)
    assert "this '{' is never closed" in message
    # A missing comma inside a closed bracket is still reported where it is.
    line, col, message = one(BASE + "candidates: [{model: gemini-2.5-flash} {model: gemini-2.5-pro}]\n")
    assert (line, col) == (6, 40) and "did not find expected ',' or ']'" in message


def test_a_selector_value_no_model_has_is_named_with_the_closest_values():
    line, col, message = one(BASE + "candidates:\n  - select: {publisher: googel}\n")
    assert (line, col) == (7, 14)
    assert message == "select.publisher: no catalog model has publisher 'googel'; closest: google"
    line, col, message = one(BASE + "candidates:\n  - select: {family: [gemini-2.5, claud-4.5]}\n")
    assert (line, col) == (7, 35)
    assert message.startswith("select.family: no catalog model has family 'claud-4.5'; closest: claude-4.5")
    line, col, message = one(BASE + "candidates:\n  - select: {publisher: anthropic, family: gemini-2.5}\n")
    assert (line, col) == (7, 5)
    assert message == "selector matches no catalog model: no single model has publisher=anthropic, family=gemini-2.5 together"


def test_errors_inside_a_budget_action_point_at_the_key():
    text = BUDGET + '    actions:\n      - at_percent: 80\n        max_cost_usd: "0"\n      - refuse: true\n        at_pace_percent: 0\n'
    (a, b) = problems(text)
    assert (a[1], a[2]) == (13, 9) and "max_cost_usd must be a positive amount" in a[3]
    assert (b[1], b[2]) == (15, 9) and "at_pace_percent must be positive" in b[3]


def test_an_unknown_enum_value_is_echoed_with_a_suggestion():
    line, col, message = one(BASE.replace("objective: cheapest", "objective: best_qualty"))
    assert (line, col) == (4, 5)
    assert "unknown value 'best_qualty'; did you mean 'best_quality'? (one of: cheapest, best_quality, quality_per_dollar, weighted)" in message
    line, col, message = one(BASE.replace("    objective: cheapest\n", "    constraints: {capabilities: [visoin]}\n"))
    assert (line, col) == (4, 34)
    assert "unknown value 'visoin'; did you mean 'vision'?" in message


@pytest.mark.parametrize("value", ['"1e400"', '"1e2"', '"5E0"', '"1e-3"', '".5"', '"inf"', "1e400"])
def test_exponent_money_is_refused_like_the_schema_does(value):
    line, col, message = one(BUDGET.replace('limit_usd: "5"', f"limit_usd: {value}"))
    assert (line, col) == (10, 5)
    assert "budgets.0.limit_usd:" in message
    assert "no exponent" in message or "not a finite number" in message


def test_money_beyond_the_ledgers_exact_range_is_refused():
    line, col, message = one(BUDGET.replace('limit_usd: "5"', 'limit_usd: "10000000"'))
    assert (line, col) == (10, 5) and "'10000000' is too large (at most 9007199.254740991" in message


def test_duplicate_budget_names_are_refused():
    text = BUDGET + '  - name: daily\n    scope: tenant\n    window: month\n    limit_usd: "1"\n'
    line, col, message = one(text)
    assert (line, col) == (11, 5)
    assert message == "duplicate budget name 'daily' (first at line 7)"


def test_a_huge_default_max_tokens_is_refused():
    line, col, message = one(BASE + "settings:\n  default_max_tokens: " + "1" + "0" * 41 + "\n")
    assert (line, col) == (7, 3)
    assert message.startswith("settings.default_max_tokens: Input should be less than or equal to 100000000, not 1000000")


# ---------------------------------------------------------------------------------------- sweep
def _mutations(line: str) -> list[str]:
    """A few careless edits of one line."""
    stripped = line.rstrip("\n")
    out = ["", stripped[: len(stripped) // 2] + "\n", stripped + " [\n", stripped + "x\n"]
    if ":" in stripped:
        key, _, _ = stripped.partition(":")
        out += [f"{key}: true\n", f"{key}: \"1e400\"\n", f"{key}: [\n", f"{key}: calendar:day@America\n", f"{key}: -1\n"]
        out += [f"{key}: 1{'0' * 41}\n", f"{key}: \"\"\n", f"{key}: {{}}\n", f"{key}: calendar:day@\n", f"{key}: [x, {{y: 1}}]\n"]
    return out


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "policies").glob("*.yaml")))
def test_mutating_any_line_of_an_example_never_tracebacks(example):
    catalog = default_catalog()
    lines = (ROOT / "policies" / example).read_text().splitlines(keepends=True)
    for index, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        for mutated in _mutations(line):
            text = "".join(lines[:index] + [mutated] + lines[index + 1 :])
            try:
                policy = load_policy(text, catalog, filename="p.yaml")
            except PolicyError as exc:
                for name, row, col, message in exc.problems:
                    assert name == "p.yaml" and 1 <= row <= len(lines) + 1 and col >= 1 and message, (example, index, mutated)
                continue
            # A mutation the validator accepts must also compile and decide (or refuse) without a traceback.
            try:
                compile_policy(policy, catalog).decide(RequestFeatures(tenant="acme", app="search", prompt_tokens=500, max_tokens=200), StateSnapshot())
            except RouterError:
                pass
