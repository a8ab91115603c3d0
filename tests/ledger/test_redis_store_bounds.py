"""Bounds and best-effort paths of the Redis store (issue 12: redis_store.py's mutation gaps and the survivors of
the run of its functions left out of the first run).

The store's memo of budget registry entries it sent (``limit|last seen`` in the ledger's meta hash,
what ``router spend`` shows as a budget's last use) is bounded: more than 10,000 entries and it is cleared
before the next one, so a budget named again after that re-sends its entry (``_meta_update`` 12 / 13); a
replayed Priority PayGo event older than the ramp's 60-second window is dropped, streak included (``_ramp`` 8);
within ``retry_interval_s`` of a failure an operation does not replay the journal (``_before`` 1); learning the
ledger id is best effort (``_before`` 11 / 13)."""

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


async def test_within_the_skip_window_a_reservation_neither_replays_nor_reaches_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fail_open: a settle journaled during an outage, Redis back, and within retry_interval_s of the failure a
    reservation is granted without a hold and the journal waits (it does not try Redis first: on a dead server
    every request would wait on it). After the window the journal is replayed first and the cap holds again:
    0.5 settled + 0.9 > the $1 limit. (redis_store.py ``_before`` 1 / ``_read`` 1: ``force`` defaulting to True.)"""
    from decimal import Decimal as D

    from tests.ledger.helpers import budget

    monkeypatch.setattr(redis_store_mod, "PROBE_INTERVAL_S", 60.0)  # no background replay
    store, server, _ = open_fake_store(tmp_path, "fail_open", at("2026-03-10T12:00"))
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r0", [b], D("0.1"), 600)).granted
    server.connected = False
    assert await store.settle("r0", D("0.5"))  # journaled
    server.connected = True
    assert (await store.reserve("r1", [b], D("0.9"), 600)).granted  # inside the skip window: no hold
    assert (await store.snapshot([b], [], [])).spend[b.id] == 0  # the decision's read: zeros, Redis not tried
    assert store.journal_backlog() == 1
    store._down_until = 0.0  # the window is over
    assert not (await store.reserve("r2", [b], D("0.9"), 600)).granted  # replayed first: 0.5 + 0.9 > 1
    assert store.journal_backlog() == 0
    await store.close()


async def test_a_ledger_id_redis_refuses_to_store_does_not_stop_the_ledger(tmp_path: Path) -> None:
    """fail_open: learning the ledger's id on first contact is best effort. Here Redis refuses it (the id key
    holds a list: WRONGTYPE, an error that is not an outage); reservations still go to Redis and the cap holds:
    0.6 held, then 0.6 more > the $1 limit. (redis_store.py ``_before`` 11 / 13: the StoreError suppressed.)"""
    from decimal import Decimal as D

    import fakeredis

    from tests.ledger.helpers import budget

    store, server, _ = open_fake_store(tmp_path, "fail_open", at("2026-03-10T12:00"))
    await fakeredis.FakeAsyncRedis(server=server).rpush(store.keys.ledger_id, "not an id")
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r0", [b], D("0.6"), 600)).granted
    assert not (await store.reserve("r1", [b], D("0.6"), 600)).granted
    assert store.ledger_id is None
    await store.close()

