"""Helpers shared by the ledger tests."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from router.ledger import BudgetScope, Window


def budget(scope: str = "global", window: str = "rolling:1h", limit: str = "1") -> BudgetScope:
    return BudgetScope(scope, Window.parse(window), Decimal(limit))


def at(text: str, tz: str = "UTC") -> float:
    """Epoch seconds of a local ISO time in ``tz`` (``2024-03-10T00:30``)."""
    from zoneinfo import ZoneInfo

    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()
