"""Two bounds of the Redis store (issue 12: the gaps left by redis_store.py's partial mutmut run).

The store's memo of budget registry entries it sent (``limit|last seen`` in the ledger's meta hash,
what ``router spend`` shows as a budget's last use) is bounded: more than 10,000 entries and it is cleared
before the next one, so a budget named again after that re-sends its entry (issue 12: redis_store.py
``_meta_update`` 12 / 13, the 10,000-entry bound); a replayed Priority PayGo event older than the ramp's
60-second window is dropped, streak included (``_ramp`` 8)."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.ledger import redis_store as redis_store_mod
from tests.ledger.helpers import at, open_fake_store

NOW_MS = 1_700_000_000_000


def test_the_sent_registry_memo_is_cleared_only_past_10000_entries(tmp_path: Path) -> None:
    store, _, _ = open_fake_store(tmp_path, "fail_closed", NOW_MS / 1000)
    for i in range(10_001):  # b0 .. b10000: the memo reaches 10,001 entries, never more than 10,000 before an insert
        assert store._meta_update(f"b{i}", 5, NOW_MS) == f"5|{NOW_MS}"
    # b0 was sent 1 ms ago with the same limit: not re-sent (the memo was not cleared at 10,000)
    assert store._meta_update("b0", 5, NOW_MS + 1) == ""
    # the 10,002nd budget finds 10,001 entries: the memo is cleared first, so b1 is sent again
    assert store._meta_update("b10001", 5, NOW_MS + 1) == f"5|{NOW_MS + 1}"
    assert store._meta_update("b1", 5, NOW_MS + 2) == f"5|{NOW_MS + 2}"


async def test_a_replayed_priority_event_older_than_the_ramp_window_does_not_extend_the_streak(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Priority tokens in each of 11 consecutive minutes (12:00 .. 12:10), then one more at 12:11:00.5 while
    Redis is down (journaled). Replayed at 12:12:01.5, 61 s later, the event is older than the 60 one-second
    buckets of the window (12:11:02 .. 12:12:01) and is dropped whole: the streak's last minute stays 12:10,
    more than a minute before 12:12, so the flash ramp limit is back at its base, 4,000,000 tokens a minute
    (not 4,000,000 x 1.5 for a 12-minute streak). (redis_store.py ``_ramp`` 8: the window's first bucket.)"""
    monkeypatch.setattr(redis_store_mod, "PROBE_INTERVAL_S", 60.0)  # the test replays by hand
    t0 = at("2026-03-10T12:00")
    store, server, clock = open_fake_store(tmp_path, "fail_open", t0)
    for minute in range(11):
        clock.set(t0 + 60 * minute)
        await store.record_priority_tokens("flash", 100)
    server.connected = False
    clock.set(t0 + 660.5)
    await store.record_priority_tokens("flash", 100)  # journaled
    server.connected = True
    clock.set(t0 + 721.5)
    await store.replay_journal()
    snap = await store.snapshot([], [], ["flash"])
    assert (snap.ramp["flash"].tokens_last_minute, snap.ramp["flash"].limit_tpm) == (0, 4_000_000)
    await store.close()
