"""Issue 11 item 1 from the shell: scopes are typed with the caller's names (``tenant:a/b``) or the ledger's
encoded form (``tenant:a%2Fb``); both reach the same counter, and a look-alike name never does."""

from __future__ import annotations

import json
from decimal import Decimal

from typer.testing import CliRunner

from router.cli import get_app

POLICY = """\
version: 1
candidates: [{model: gemini-2.5-flash}]
profiles: {p: {objective: cheapest}}
default_profile: p
budgets:
  - {name: per-tenant, scope: tenant, window: calendar:month@UTC, limit_usd: "10"}
"""


def _explain(tmp_path, *args: str) -> dict:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    result = CliRunner().invoke(get_app(), ["explain", "--policy", str(path), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_explain_spend_accepts_the_callers_name_or_the_encoded_one(tmp_path):
    for typed in ("tenant:a/b=4", "tenant:a%2Fb=4", "tenant:a/b|calendar:month@UTC=4"):
        (status,) = _explain(tmp_path, "--tenant", "a/b", "--spend", typed)["budget_status"]
        assert status["scope"] == "tenant:a%2Fb|calendar:month@UTC" and Decimal(status["spend_usd"]) == 4
    (status,) = _explain(tmp_path, "--tenant", "a_b.c14cddc0", "--spend", "tenant:a/b=4")["budget_status"]
    assert Decimal(status["spend_usd"]) == 0  # the look-alike's counter is another one


def test_router_spend_scope_accepts_the_callers_name(tmp_path):
    import asyncio

    from router.ledger import BudgetScope, Window, store_from_url
    from router.ledger.names import scope_of

    import uuid

    url = f"fakeredis://h11a-encoded-names-{uuid.uuid4().hex}"  # a fresh in-process server: re-runnable in one process
    budget = BudgetScope(scope_of("tenant", "Müller/ops"), Window.parse("calendar:month@UTC"), Decimal("10"))

    async def book() -> None:
        store = store_from_url(url)
        assert (await store.reserve("r1", [budget], Decimal("1"), 60)).granted
        assert await store.settle("r1", Decimal("1.5"))
        await store.close()

    asyncio.run(book())
    for typed in ("tenant:Müller/ops", "tenant:M%C3%BCller%2Fops"):
        result = CliRunner().invoke(get_app(), ["spend", "--store", url, "--scope", typed, "--json"])
        assert result.exit_code == 0, result.output
        (row,) = json.loads(result.stdout)
        assert row["scope"] == "tenant:M%C3%BCller%2Fops" and Decimal(row["spent_usd"]) == Decimal("1.5")
