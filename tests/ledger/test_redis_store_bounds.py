"""Bounds and best-effort paths of the Redis store (issue 12: redis_store.py's mutation gaps and the survivors of
the run of its functions left out of the first run).

The store's memo of budget registry entries it sent (``limit|last seen`` in the ledger's meta hash,
what ``router spend`` shows as a budget's last use) is bounded: more than 10,000 entries and it is cleared
before the next one, so a budget named again after that re-sends its entry (``_meta_update`` 12 / 13); a
replayed Priority PayGo event older than the ramp's 60-second window is dropped, streak included (``_ramp`` 8);
within ``retry_interval_s`` of a failure an operation does not replay the journal (``_before`` 1, ``_read`` 1);
learning the ledger id is best effort (``_before`` 11 / 13); and the store's defaults: a 0.5 s skip window, the
key prefix "router", a journal file per ledger, a ledger identity that includes the prefix (``__init__``); a
redis-py 5.0.0 client, without ``aclose()``, is closed with ``close()`` (``close``)."""

from __future__ import annotations

import uuid
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


async def test_within_the_skip_window_reservations_and_snapshots_do_not_reach_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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



# ---------------------------------------------------------------- defaults of a store (redis_store.py __init__)
async def test_after_a_failure_redis_is_tried_again_after_half_a_second(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store opened from a URL skips Redis for retry_interval_s = 0.5 s after a failure (``__init__`` 7):
    0.6 s later a reservation reaches Redis again and the $1 cap holds (0.6 held + 0.6 > 1)."""
    import asyncio
    from decimal import Decimal as D

    from tests.ledger.helpers import budget

    monkeypatch.setattr(redis_store_mod, "PROBE_INTERVAL_S", 60.0)  # no background probe
    store, server, _ = open_fake_store(tmp_path, "fail_open", at("2026-03-10T12:00"))
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r0", [b], D("0.6"), 600)).granted
    server.connected = False
    assert (await store.reserve("r1", [b], D("0.6"), 600)).granted  # fail_open: nothing held
    server.connected = True
    assert (await store.reserve("r2", [b], D("0.6"), 600)).granted  # inside the 0.5 s window
    await asyncio.sleep(0.6)
    assert not (await store.reserve("r3", [b], D("0.6"), 600)).granted
    await store.close()


async def test_a_store_built_on_a_client_shares_the_default_ledger_of_a_url_store(tmp_path: Path) -> None:
    """RedisStore(client) and store_from_url(url) both default to the key prefix "router" (``__init__`` 3 / 4):
    the same ledger, so spend booked through one is seen and enforced by the other."""
    from decimal import Decimal as D

    import fakeredis

    from router.ledger import factory, store_from_url
    from router.ledger.redis_store import RedisStore
    from tests.ledger.helpers import budget

    name = f"shared-default-prefix-{uuid.uuid4().hex[:8]}"  # a fresh server: module-level, kept across tests
    by_url = store_from_url(f"fakeredis://{name}")
    direct = RedisStore(fakeredis.FakeAsyncRedis(server=factory._FAKE_SERVERS[name]))
    b = budget("tenant:a", "calendar:day", "1")
    assert (await by_url.reserve("r0", [b], D("0.7"), 600)).granted
    assert await by_url.settle("r0", D("0.7"))
    assert await direct.spend(b) == D("0.7")
    assert not (await direct.reserve("r1", [b], D("0.4"), 600)).granted
    await by_url.close()
    await direct.close()


def test_a_fail_open_store_journals_by_default_to_one_file_per_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without journal_path a fail_open store journals to $TMPDIR/router-ledger-PREFIX-DIGEST.jsonl, DIGEST the
    first 12 hex digits of the SHA-256 of its ledger identity (``__init__`` 31-34); a store built on a client
    without a URL is the default local ledger redis://localhost:6379/0#router (``__init__`` 1)."""
    import hashlib
    import tempfile

    import fakeredis

    from router.ledger import store_from_url
    from router.ledger.redis_store import RedisStore

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    name = f"journal-default-{uuid.uuid4().hex[:8]}"
    store = store_from_url(f"fakeredis://{name}", prefix="p", failure_mode="fail_open")
    digest = hashlib.sha256(f"fakeredis://{name}#p".encode()).hexdigest()[:12]
    assert str(store.journal.path) == f"{tmp_path}/router-ledger-p-{digest}.jsonl"
    direct = RedisStore(fakeredis.FakeAsyncRedis(), failure_mode="fail_open")
    assert direct.identity == "redis://localhost:6379/0#router"
    digest = hashlib.sha256(b"redis://localhost:6379/0#router").hexdigest()[:12]
    assert str(direct.journal.path) == f"{tmp_path}/router-ledger-router-{digest}.jsonl"


async def test_an_event_journaled_for_another_prefix_is_not_this_ledgers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two ledgers on one Redis under different prefixes, one journal file: a settle journaled by ledger "a"
    before it ever reached Redis (no ledger id) belongs to "a" by its identity (URL and prefix), never to "b",
    which would otherwise book a's spend (``__init__`` 18: the identity without its prefix)."""
    from decimal import Decimal as D

    from router.ledger import factory, store_from_url

    monkeypatch.setattr(redis_store_mod, "PROBE_INTERVAL_S", 60.0)
    journal = str(tmp_path / "shared.jsonl")
    name = f"two-prefixes-{uuid.uuid4().hex[:8]}"
    a = store_from_url(f"fakeredis://{name}", prefix="a", failure_mode="fail_open", journal_path=journal)
    b = store_from_url(f"fakeredis://{name}", prefix="b", failure_mode="fail_open", journal_path=journal)
    server = factory._FAKE_SERVERS[name]
    server.connected = False
    assert await a.settle("r0", D("0.5"))  # journaled, no ledger id known
    server.connected = True
    assert (a.journal_backlog(), b.journal_backlog()) == (1, 0)
    await a.close()
    await b.close()


class _ClientWithoutAclose:
    """A redis-py 5.0.0 asyncio client as the store sees it: scripts and ``close()``, no ``aclose()`` (which
    came in 5.0.1; pyproject allows redis>=5.0)."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.closed = False

    def register_script(self, text: str) -> object:
        return self._inner.register_script(text)  # type: ignore[attr-defined]

    async def close(self) -> None:
        self.closed = True
        await self._inner.aclose()  # type: ignore[attr-defined]


async def test_a_client_without_aclose_is_closed_with_close(tmp_path: Path) -> None:
    """(redis_store.py ``close`` 13 / 16-21: the fallback to ``client.close()``.)"""
    from decimal import Decimal as D

    import fakeredis

    from router.ledger.redis_store import RedisStore
    from tests.ledger.helpers import budget

    client = _ClientWithoutAclose(fakeredis.FakeAsyncRedis())
    store = RedisStore(client, url="redis://old-client.example:6379/0", prefix="p")
    assert (await store.reserve("r0", [budget("tenant:a", "calendar:day", "1")], D("0.5"), 600)).granted
    await store.close()
    assert client.closed
