"""Issue 11 item 14 (ledger side): ``True`` is not one dollar. Booleans are refused as money on every backend."""

from __future__ import annotations

from decimal import Decimal

import pytest

from router.ledger import BudgetScope, Window
from router.ledger.money import to_nano

D = Decimal


def _budget(limit=D("5")) -> BudgetScope:
    return BudgetScope("tenant:acme", Window.parse("rolling:24h"), limit)


@pytest.mark.parametrize("amount", [True, False, 1.0, None, b"1"])
def test_to_nano_refuses_non_money(amount):
    with pytest.raises(TypeError, match="money must be a Decimal"):
        to_nano(amount)


def test_to_nano_names_a_bad_decimal_string():
    with pytest.raises(ValueError, match=r"'1e' is not a decimal amount"):
        to_nano("1e")


async def test_reserve_and_settle_refuse_a_bool_amount(store):
    with pytest.raises(TypeError, match=r"money must be a Decimal.*bool \(True\)"):
        await store.reserve("r1", [_budget()], True, 60)
    assert await store.spend(_budget()) == 0
    assert (await store.snapshot([_budget()], [], [])).spend[_budget().id] == 0  # nothing held either
    assert (await store.reserve("r1", [_budget()], D("0.5"), 60)).granted
    with pytest.raises(TypeError, match="money must be a Decimal"):
        await store.settle("r1", True)
    assert await store.settle("r1", D("0.25"))
    assert await store.spend(_budget()) == D("0.25")


async def test_a_bool_limit_is_refused(store):
    with pytest.raises(TypeError, match="limit of tenant:acme"):
        await store.reserve("r1", [_budget(limit=True)], D("0.5"), 60)
