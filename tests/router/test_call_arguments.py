"""Issue 11 item 14 (call side): routing arguments are checked where the caller passes them, and errors name
the caller's argument: ``max_tokens=True`` is not one token, a too long ``request_id`` names ``request_id``
and the limit (not an internal ledger id), ``tenant=""`` is not a tenant."""

from __future__ import annotations

from pathlib import Path

import pytest

from router import RequestError, UsageError
from router.cost import Usage

pytestmark = pytest.mark.litellm
HELLO = [{"role": "user", "content": "hello there"}]
POLICY = """\
version: 1
candidates: [{model: gemini-2.5-flash}]
profiles: {p: {objective: cheapest}}
default_profile: p
budgets:
  - {name: per-tenant, scope: tenant, window: calendar:month@UTC, limit_usd: "10"}
"""


@pytest.fixture
def r(stub_router, vertex_stub, tmp_path: Path):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 10, "output_tokens": 5})
    return stub_router(str(path))


async def _nothing_booked(r) -> None:
    assert await r.store().list_scopes() == []


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"max_tokens": True}, "max_tokens", "must be a whole number of tokens, not bool (True)"),
        ({"max_tokens": 2.5}, "max_tokens", "must be a whole number of tokens, not float (2.5)"),
        ({"max_tokens": 0}, "max_tokens", "must be at least 1"),
        ({"prompt_tokens": True}, "prompt_tokens", "must be a whole number of tokens, not bool (True)"),
        ({"prompt_tokens": -1}, "prompt_tokens", "must not be negative (-1)"),
        ({"tenant": ""}, "tenant", "must not be empty: pass None (or leave it out) for none"),
        ({"tenant": 42}, "tenant", "must be a string, not int (42)"),
        ({"app": ""}, "app", "must not be empty"),
        ({"tags": {"team": ""}}, "tags['team']", "must not be empty"),
        ({"request_id": "x" * 243}, "request_id", "is 243 characters long; at most 200 are allowed"),
        ({"request_id": "has space"}, "request_id", "use printable ASCII characters without spaces or braces"),
        ({"request_id": True}, "request_id", "must be a string, not bool (True)"),
    ],
)
async def test_bad_routing_arguments_are_refused_naming_the_argument(r, kwargs, field, message):
    with pytest.raises(RequestError) as info:
        await r.acomplete(HELLO, **kwargs)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ") and message in str(info.value)
    await _nothing_booked(r)


async def test_the_longest_request_id_and_an_exact_token_count_are_served(r):
    response = await r.acomplete(HELLO, request_id="r" * 200, tenant="Müller/ops", max_tokens=64, prompt_tokens=10)
    assert response.routing.request_id == "r" * 200
    assert response.routing.cost_usd > 0
    assert [info.budget.scope for info in await r.store().list_scopes()] == ["tenant:M%C3%BCller%2Fops"]


@pytest.mark.parametrize("field", ["input_tokens", "output_tokens", "cached_input_tokens", "grounded_prompts"])
def test_usage_refuses_a_bool_count(field):
    with pytest.raises(UsageError, match=f"^{field}: must be a whole number"):
        Usage.build(**{field: True})


def test_the_cost_cli_refuses_a_bool_token_count():
    from typer.testing import CliRunner

    from router.cli import get_app

    result = CliRunner().invoke(get_app(), ["cost", "gemini-2.5-flash", "--input-tokens", "true"])
    assert result.exit_code == 2 and "--input-tokens" in result.output and "Traceback" not in result.output


def test_the_explain_cli_refuses_an_empty_tenant(tmp_path):
    from typer.testing import CliRunner

    from router.cli import get_app

    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    result = CliRunner().invoke(get_app(), ["explain", "--policy", str(path), "--tenant", ""])
    assert result.exit_code != 0 and "--tenant: must not be empty" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(("extra", "field"), [({"max_tokens": True}, "max_tokens"), ({"metadata": {"prompt_tokens": True}}, "prompt_tokens"), ({"metadata": {"tenant": "acme", "prompt_tokens": "2.5"}}, "prompt_tokens")])
async def test_the_proxy_plugin_refuses_a_bool_token_count_as_a_400(tmp_path, extra, field):
    """The proxy reads counts from JSON: ``true`` is not 1 token (before: ``int(True)``)."""
    from tests.proxy.test_hook_unit import _body, _routing

    routing = _routing(tmp_path)
    with pytest.raises(Exception) as info:
        await routing.route(_body(**extra))
    assert getattr(info.value, "code", None) == "400" or getattr(info.value, "status_code", None) == 400
    assert f"{field}: must be a whole number of tokens" in str(getattr(info.value, "message", info.value))
