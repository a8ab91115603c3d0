"""Helpers shared by the ledger tests."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from router.ledger import BudgetScope, Window
from tests.fixtures_redis import FakeClock


def budget(scope: str = "global", window: str = "rolling:1h", limit: str = "1") -> BudgetScope:
    return BudgetScope(scope, Window.parse(window), Decimal(limit))


def at(text: str, tz: str = "UTC") -> float:
    """Epoch seconds of a local ISO time in ``tz`` (``2024-03-10T00:30``)."""
    from zoneinfo import ZoneInfo

    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


def open_fake_store(tmp_path: Path, mode: str, now: float, name: str | None = None) -> tuple[Any, Any, FakeClock]:
    """``(store, its fakeredis server, its clock)``: a RedisStore on a fresh fakeredis server named ``name``
    (random by default) in ``mode`` (``fail_closed`` / ``fail_open``), journaling to ``tmp_path / "journal"``,
    its clock at ``now`` (epoch seconds) and moved by hand."""
    from router.ledger import factory, store_from_url

    name = name or f"t{uuid.uuid4().hex[:10]}"
    clock = FakeClock(now)
    store = store_from_url(f"fakeredis://{name}", prefix="p", failure_mode=mode, journal_path=str(tmp_path / "journal"), clock=clock)
    return store, factory._FAKE_SERVERS[name], clock
