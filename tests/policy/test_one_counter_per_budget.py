"""Issue 11 item 3: two budgets never share one spend counter silently.

Before: ``{scope: tenant, window: calendar:month@UTC, limit_usd: "50"}`` and ``{scope: tenant:tiny, ...,
limit_usd: "0.001"}`` both counted into ``tenant:tiny|calendar:month@UTC``; ``validate`` said ok, ``explain``
listed the scope twice and the order of the file decided which limit applied. A counter is one (scope,
window): budgets that could share one are refused with both lines, and the ledger refuses one counter with
two limits."""

from __future__ import annotations

from decimal import Decimal

import pytest

from router.catalog import default_catalog
from router.errors import PolicyError
from router.ledger import BudgetScope, Window
from router.policy import load_policy

HEAD = """\
version: 1
candidates: [{model: gemini-2.5-flash}]
profiles: {p: {objective: cheapest}}
default_profile: p
budgets:
"""


def _policy(*budgets: str) -> str:
    return HEAD + "".join(f"  - {b}\n" for b in budgets)


def _problems(text: str) -> list[tuple[str, int, int, str]]:
    with pytest.raises(PolicyError) as info:
        load_policy(text, default_catalog(), filename="policy.yaml")
    return info.value.problems


def test_the_reported_overlap_is_refused_with_both_lines():
    (problem,) = _problems(_policy(
        '{name: all, scope: tenant, window: calendar:month@UTC, limit_usd: "50"}',
        '{name: tiny, scope: tenant:tiny, window: calendar:month@UTC, limit_usd: "0.001"}',
    ))
    name, line, _col, message = problem
    assert (name, line) == ("policy.yaml", 7)
    assert "budget 'tiny' (scope 'tenant:tiny') and budget 'all' at line 6 (scope 'tenant')" in message
    assert "share one spend counter for tenant:tiny over calendar:month@UTC" in message


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("{scope: global, window: month, limit_usd: 5}", "{scope: global, window: calendar:month@UTC, limit_usd: 9}"),
        ("{scope: tenant:acme, window: 24h, limit_usd: 5}", "{scope: tenant, window: rolling:24h, limit_usd: 9}"),
        ("{scope: app, window: 7d, limit_usd: 5}", "{scope: app, window: 7d, limit_usd: 9}"),
        ('{scope: "tag:team", window: day, limit_usd: 5}', '{scope: "tag:team=ml", window: day, limit_usd: 9}'),
        ('{scope: "tag:team=ml", window: day, limit_usd: 5}', '{scope: "tag:team=ml", window: day, limit_usd: 5}'),
    ],
)
def test_every_kind_of_shared_counter_is_refused(first, second):
    (problem,) = _problems(_policy(first, second))
    assert problem[1] == 7 and "would share one spend counter" in problem[3]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("{scope: tenant, window: month, limit_usd: 5}", "{scope: tenant, window: 24h, limit_usd: 1}"),
        ("{scope: tenant:a, window: month, limit_usd: 5}", "{scope: tenant:b, window: month, limit_usd: 1}"),
        ('{scope: "tag:team", window: month, limit_usd: 5}', '{scope: "tag:env", window: month, limit_usd: 1}'),
        ("{scope: tenant, window: month, limit_usd: 5}", "{scope: app, window: month, limit_usd: 1}"),
        ("{scope: global, window: month@Europe/Paris, limit_usd: 5}", "{scope: global, window: month, limit_usd: 1}"),
    ],
)
def test_budgets_with_their_own_counters_are_accepted(first, second):
    load_policy(_policy(first, second), default_catalog())


async def test_the_ledger_refuses_one_counter_with_two_limits(store):
    window = Window.parse("calendar:month@UTC")
    big, tiny = BudgetScope("tenant:tiny", window, Decimal("50")), BudgetScope("tenant:tiny", window, Decimal("0.001"))
    for order in ([big, tiny], [tiny, big]):
        with pytest.raises(ValueError, match=r"share the counter 'tenant:tiny\|calendar:month@UTC' with different limits"):
            await store.reserve("r1", order, Decimal("0.01"), 60)
    assert await store.spend(big) == 0
    assert (await store.reserve("r2", [big, big], Decimal("0.01"), 60)).granted  # the same budget twice is one
