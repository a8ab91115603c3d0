"""RedisStore (router/ledger/redis_store.py) over fakeredis, the paths around the budgets: Provisioned
Throughput counters and month totals, shared policy versions, the budget registry, pool and rate reads,
in an outage and just after it (within ``retry_interval_s`` of a failure), transient server errors in
``fail_open``, and the background probe that ends an outage by itself.

The outage is fakeredis's own (``FakeServer.connected = False``: every command raises ``ConnectionError``).
Written to kill mutmut survivors of redis_store.py (issue 12); amounts are hand-computed literals.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
import redis.exceptions as rexc

from router.errors import StoreError, StoreUnavailableError
from router.ledger import QuotaPool, ScopeInfo
from router.ledger import redis_store as redis_store_mod
from router.ledger.capacity import PtClaim, PtTotals
from router.ledger.rate import RatePool, RateTake
from tests.fixtures_redis import FakeClock
from tests.ledger.helpers import at, budget, open_fake_store

D = Decimal
T0 = at("2026-03-10T12:00")
KEY = "gemini-2.0-flash@us-central1"
UNREACHABLE = r"is unreachable \(.*connection error\.\); refusing to serve without it"
UTC = dt.timezone.utc


_Clock = FakeClock
_open = open_fake_store


# ---------------------------------------------------------------- Provisioned Throughput
async def test_pt_calls_refuse_naming_the_connection_error_in_fail_closed(tmp_path: Path) -> None:
    store, server, _ = _open(tmp_path, "fail_closed", T0)
    assert (await store.pt_claim(KEY, 1_000, 10_000)).granted
    server.connected = False
    calls = [
        lambda: store.pt_claim(KEY, 10, 10_000),
        lambda: store.pt_adjust(KEY, 0, -500),
        lambda: store.pt_settle(KEY, 0, -500, True, 500, D("0.01"), D("0.02")),
        lambda: store.pt_usage([KEY]),
        lambda: store.pt_totals(),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailableError, match=UNREACHABLE):
            await call()
    server.connected = True
    assert await store.pt_usage([KEY]) == {KEY: 1_000}  # nothing of the refused calls was counted
    assert await store.pt_totals() == []


async def test_pt_calls_in_an_outage_deny_drop_and_read_full_in_fail_open(tmp_path: Path) -> None:
    """fail_open with Redis down: a claim is denied reading the window as full (the caller spills to PayGo),
    an adjustment and a settle are dropped (the counter heals within 30 s), and every counter reads as the
    largest count a claim accepts (2^52), so no capacity is counted on as free."""
    store, server, _ = _open(tmp_path, "fail_open", T0 + 0.5)
    # the bucket of a claim is the whole second (T0 is a whole second): the one a reconciliation goes to
    assert await store.pt_claim(KEY, 9_000, 10_000) == PtClaim(True, 9_000, 10_000, int(T0))
    server.connected = False
    assert await store.pt_claim(KEY, 10, 100_000) == PtClaim(False, 100_000, 100_000, int(T0))
    assert await store.pt_adjust(KEY, int(T0), -4_000) is False
    assert await store.pt_settle(KEY, int(T0), -4_000, True, 5_000, D("0.01"), D("0.02")) is None
    assert await store.pt_usage([KEY, "other-model@europe-west4"]) == {KEY: 2**52, "other-model@europe-west4": 2**52}
    server.connected = True
    await store.replay_journal()  # nothing journaled; ends the bypass of Redis right away
    assert await store.pt_usage([KEY]) == {KEY: 9_000}
    assert await store.pt_totals() == []


@pytest.mark.parametrize("capacity", [-1, True, 1.5, 2**52 + 1])
async def test_a_pt_claim_with_an_invalid_capacity_is_refused(tmp_path: Path, capacity) -> None:
    store, _, _ = _open(tmp_path, "fail_closed", T0)
    with pytest.raises(ValueError, match=r"^capacity must be a non-negative integer"):
        await store.pt_claim(KEY, 1, capacity)
    assert await store.pt_usage([KEY]) == {KEY: 0}


async def test_pt_month_rows_of_only_served_or_only_spilled_requests_read_zero_for_the_rest(tmp_path: Path) -> None:
    a, b = "a-model@us-central1", "b-model@us-central1"
    start = at("2026-11-02T00:00")
    store, _, clock = _open(tmp_path, "fail_closed", start)
    await store.pt_settle(a, 0, 0, True, 3_000, D("0.002"), D("0.0005"))  # served only
    clock.now = start + 10 * 86_400
    await store.pt_settle(b, 0, 0, False, 0, D(0), D("0.0012"))  # spilled only
    row_a = PtTotals(a, "2026-11", 1, 0, 3_000, D("0.002"), D("0.0005"), D(0))
    row_b = PtTotals(b, "2026-11", 0, 1, 0, D(0), D(0), D("0.0012"))
    assert await store.pt_totals() == [row_b, row_a]
    # a row is kept 400 days after its last request (capacity.MONTH_TTL_MS), not one millisecond more
    clock.now = start + 400 * 86_400 - 0.5
    assert await store.pt_totals() == [row_b, row_a]
    clock.now = start + 400 * 86_400
    assert await store.pt_totals() == [row_b]  # a's row, the first in the index, is over; b's is not


# ---------------------------------------------------------------- shared policy versions
async def test_a_published_policy_reads_back_by_name_and_version(tmp_path: Path) -> None:
    store, _, clock = _open(tmp_path, "fail_closed", T0)
    v1, v2 = "0123456789ab", "ba9876543210"
    assert await store.policy_version("prod") is None
    assert await store.policy_text("prod", v1) is None
    assert await store.publish_policy("prod", v1, "default: flash\n") is True
    assert await store.policy_version("prod") == v1
    assert await store.policy_text("prod", v1) == "default: flash\n"
    assert await store.policy_text("prod", v2) is None
    assert await store.policy_version("staging") is None
    clock.now = T0 + 60
    assert await store.publish_policy("prod", v2, "default: pro\n") is True
    assert await store.publish_policy("prod", v2, "default: pro\n") is False  # already current
    assert await store.policy_version("prod") == v2
    assert await store.policy_text("prod", v1) == "default: flash\n"  # the old text stays for a rollback
    assert await store.policy_history("prod") == [
        (v2, dt.datetime(2026, 3, 10, 12, 1, tzinfo=UTC)),
        (v1, dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)),
    ]


async def test_policy_names_and_versions_are_validated_before_redis(tmp_path: Path) -> None:
    store, _, _ = _open(tmp_path, "fail_closed", T0)
    with pytest.raises(ValueError, match="policy"):
        await store.publish_policy("prod", "not-a-version", "x: 1\n")
    with pytest.raises(ValueError, match="policy"):
        await store.publish_policy("bad name", "0123456789ab", "x: 1\n")
    with pytest.raises(ValueError, match="policy"):
        await store.policy_version("bad name")
    with pytest.raises(ValueError, match="policy"):
        await store.policy_text("bad name", "0123456789ab")
    with pytest.raises(ValueError, match="policy"):
        await store.policy_text("prod", "not-a-version")
    with pytest.raises(ValueError, match="policy"):
        await store.policy_history("bad name")
    assert await store.policy_version("prod") is None  # nothing was published


async def test_policy_calls_refuse_naming_the_connection_error_while_redis_is_down(tmp_path: Path) -> None:
    store, server, _ = _open(tmp_path, "fail_closed", T0)
    server.connected = False
    calls = [
        lambda: store.publish_policy("prod", "0123456789ab", "x: 1\n"),
        lambda: store.policy_version("prod"),
        lambda: store.policy_text("prod", "0123456789ab"),
        lambda: store.policy_history("prod"),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailableError, match=UNREACHABLE):
            await call()


# ---------------------------------------------------------------- reads right after an outage
async def test_reads_right_after_an_outage_try_redis_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure makes fail_open skip Redis for retry_interval_s; reads that would report the store
    unavailable try it anyway, so they answer as soon as Redis is back (nothing journaled here)."""
    monkeypatch.setattr(redis_store_mod, "PROBE_INTERVAL_S", 60.0)  # no background probe during the test
    store, server, _ = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    pool = QuotaPool("search", 5, "day", "UTC")
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    assert (await store.consume(pool, 2, "q1")).billable_units == 0
    server.connected = False
    assert (await store.reserve("r2", [b], D("0.25"), 600)).granted  # served without Redis, not journaled
    server.connected = True
    assert store.journal_backlog() == 0
    assert await store.list_scopes() == [ScopeInfo(budget("tenant:a", "calendar:day", "1"), dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC))]
    assert (await store.pool_usage(pool)).used == 2
    assert await store.spend(b) == 0


async def test_a_scope_listing_right_after_an_outage_replays_the_journal_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_store_mod, "PROBE_INTERVAL_S", 60.0)
    store, server, _ = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    server.connected = False
    assert await store.settle("r1", D("0.25"))  # journaled
    server.connected = True
    assert store.journal_backlog() == 1
    assert [s.budget.id for s in await store.list_scopes()] == [b.id]
    assert store.journal_backlog() == 0  # the listing replayed it


@pytest.mark.parametrize("mode", ["fail_closed", "fail_open"])
async def test_reads_refuse_naming_the_connection_error_while_redis_is_down(tmp_path: Path, mode: str) -> None:
    store, server, _ = _open(tmp_path, mode, T0)
    pool = QuotaPool("search", 5, "day", "UTC")
    assert (await store.reserve("r1", [budget("tenant:a", "calendar:day", "1")], D("0.5"), 600)).granted
    server.connected = False
    with pytest.raises(StoreUnavailableError, match=UNREACHABLE):
        await store.list_scopes()
    with pytest.raises(StoreUnavailableError, match=UNREACHABLE):
        await store.pool_usage(pool)


# ---------------------------------------------------------------- rate pools
async def test_rate_outcomes_in_an_outage_are_dropped_and_reads_refused(tmp_path: Path) -> None:
    store, server, clock = _open(tmp_path, "fail_closed", T0)
    pool = RatePool("count_tokens.p1", 5)
    assert await store.rate_outcomes(pool, "counted") == {"counted": 1}
    server.connected = False
    assert await store.rate_outcomes(pool, "cache_hit") == {}  # statistics only: not counted, no error
    with pytest.raises(StoreUnavailableError, match=UNREACHABLE):
        await store.rate_outcomes(pool)
    with pytest.raises(StoreUnavailableError, match=UNREACHABLE):
        await store.take_rate(pool, 0)
    assert await store.take_rate(pool) == RateTake("count_tokens.p1", False, 0, 5)
    server.connected = True
    clock.now = T0 + 3600.25  # later the same UTC day: the same day's counts
    assert await store.rate_outcomes(pool) == {"counted": 1}


# ---------------------------------------------------------------- transient server errors
def _refusing(exc: Exception):
    async def script(keys=None, args=None, client=None):  # noqa: ANN001, ANN202 - a registered script's call
        raise exc

    return script


@pytest.mark.parametrize(
    "exc",
    [
        rexc.ReadOnlyError("You can't write against a read only replica."),
        rexc.ResponseError("OOM command not allowed when used memory > 'maxmemory'."),
        rexc.ResponseError("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
    ],
    ids=["readonly-replica", "oom", "masterdown"],
)
async def test_a_transient_server_error_in_fail_open_journals_the_settle(tmp_path: Path, exc: Exception) -> None:
    """A failover or memory pressure is not a bad request: fail_open journals the bill rather than lose it."""
    store, _, clock = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    settle = store._scripts["settle"]
    store._scripts["settle"] = _refusing(exc)
    assert await store.settle("r1", D("0.25")) is True
    assert store.journal_backlog() == 1
    store._scripts["settle"] = settle
    clock.now = T0 + 5
    assert await store.replay_journal() == 1
    assert await store.spend(b) == D("0.25")


@pytest.mark.parametrize("mode", ["fail_closed", "fail_open"])
async def test_a_refused_script_is_a_store_error_and_nothing_is_journaled(tmp_path: Path, mode: str) -> None:
    store, _, _ = _open(tmp_path, mode, T0)
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    store._scripts["settle"] = _refusing(rexc.ResponseError("ERR Error running script: bad argument"))
    with pytest.raises(StoreError, match=r"settle script failed: ERR Error running script") as info:
        await store.settle("r1", D("0.25"))
    assert not isinstance(info.value, StoreUnavailableError)
    assert store.journal_backlog() == 0


# ---------------------------------------------------------------- the background probe
def _probed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fail_open store that skips Redis for 30 s after a failure, with a probe every 10 ms."""
    import fakeredis

    from router.ledger.redis_store import RedisStore

    monkeypatch.setattr(redis_store_mod, "PROBE_INTERVAL_S", 0.01)
    server = fakeredis.FakeServer(version=7)

    def open_store(mode: str = "fail_open", journal: str = "journal"):
        client = fakeredis.FakeAsyncRedis(server=server)
        return RedisStore(client, url="redis://probe.example:6379/0", prefix="p", failure_mode=mode,
                          journal_path=str(tmp_path / journal), clock=_Clock(T0), retry_interval_s=30.0)

    return open_store, server


async def _until(condition, seconds: float = 3.0) -> bool:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


async def test_the_probe_replays_the_journal_as_soon_as_redis_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store, server = _probed(tmp_path, monkeypatch)
    store = open_store()
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    server.connected = False
    assert await store.settle("r1", D("0.25"))  # journaled; the probe starts
    await asyncio.sleep(0.1)  # it tries Redis (still down) several times
    assert store.journal_backlog() == 1
    server.connected = True
    assert await _until(lambda: store.journal_backlog() == 0)  # no operation needed
    reader = open_store("fail_closed", journal="reader")
    assert await reader.spend(b) == D("0.25")
    # and the skip is over well within retry_interval_s: Redis holds again, and enforces the cap
    assert (await store.reserve("r2", [b], D("0.75"), 60)).granted
    assert not (await store.reserve("r3", [b], D("0.01"), 60)).granted
    await store.close()


async def test_the_probe_ends_the_skip_of_redis_when_nothing_was_journaled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store, server = _probed(tmp_path, monkeypatch)
    store = open_store()
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    server.connected = False
    assert (await store.reserve("r2", [b], D("0.5"), 600)).granted  # served without Redis; the probe starts
    server.connected = True
    await asyncio.sleep(0.2)  # the probe reaches Redis: nothing to replay
    assert store.journal_backlog() == 0
    assert (await store.reserve("r3", [b], D("0.5"), 600)).granted  # held in Redis: 0.5 + 0.5 = the limit
    assert not (await store.reserve("r4", [b], D("0.01"), 600)).granted
    await store.close()


async def test_the_probe_keeps_trying_when_the_replay_itself_hits_the_outage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis answers the probe, then drops the replay's first call: the probe tries again and the journal
    is replayed without any operation."""
    open_store, server = _probed(tmp_path, monkeypatch)
    store = open_store()
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    server.connected = False
    assert await store.settle("r1", D("0.25"))  # journaled; the probe starts
    settle, calls = store._scripts["settle"], []

    async def flaky(keys=None, args=None, client=None):  # noqa: ANN001, ANN202
        calls.append(1)
        if len(calls) == 1:
            raise rexc.ConnectionError("Connection reset by peer")
        return await settle(keys=keys, args=args)

    store._scripts["settle"] = flaky
    server.connected = True
    assert await _until(lambda: store.journal_backlog() == 0)
    assert len(calls) == 2
    reader = open_store("fail_closed", journal="reader")
    assert await reader.spend(b) == D("0.25")
    await store.close()


async def test_a_probe_answered_with_a_refusal_ends_the_skip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis answers but refuses the probe (not an outage): the skip ends, operations go to Redis again."""
    open_store, server = _probed(tmp_path, monkeypatch)
    store = open_store()
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    ledger_id = store._scripts["ledger_id"]
    store._scripts["ledger_id"] = _refusing(rexc.ResponseError("NOPERM this user has no permissions to run the 'evalsha' command"))
    server.connected = False
    assert (await store.reserve("r2", [b], D("0.25"), 600)).granted  # served without Redis; the probe starts
    server.connected = True
    await asyncio.sleep(0.2)  # the probe gets its refusal and stops
    store._scripts["ledger_id"] = ledger_id
    assert (await store.reserve("r3", [b], D("0.5"), 600)).granted  # 0.5 held + 0.5: within the limit, in Redis
    assert not (await store.reserve("r4", [b], D("0.01"), 600)).granted  # the cap is Redis's again
    await store.close()


# ---------------------------------------------------------------- a saturated client is not an outage
@pytest.mark.parametrize(
    "exc",
    [rexc.ConnectionError("No connection available."), rexc.MaxConnectionsError("Too many connections")],
    ids=["blocking-pool-timeout", "max-connections"],
)
async def test_a_saturated_connection_pool_is_an_error_not_an_outage_in_fail_open(tmp_path: Path, exc: Exception) -> None:
    """The server is fine, the client is saturated: fail_open must not grant without holds for it, nor
    journal, nor skip Redis afterwards."""
    store, _, _ = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    reserve = store._scripts["reserve"]
    store._scripts["reserve"] = _refusing(exc)
    with pytest.raises(StoreError, match=r"^ledger store fakeredis://\S+: connection pool exhausted \(") as info:
        await store.reserve("r1", [b], D("0.9"), 60)
    assert not isinstance(info.value, StoreUnavailableError)
    store._scripts["reserve"] = reserve
    assert store.journal_backlog() == 0
    assert (await store.reserve("r2", [b], D("0.9"), 60)).granted  # straight to Redis again: held
    assert not (await store.reserve("r3", [b], D("0.2"), 60)).granted


# ---------------------------------------------------------------- construction
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://app:s3cret@cache.example:6380/2", "redis://app:***@cache.example:6380/2"),
        ("rediss://:s3cret@cache.example/0", "rediss://:***@cache.example/0"),
        ("redis://cache.example:6379/0", "redis://cache.example:6379/0"),
    ],
)
def test_the_store_url_in_messages_has_no_password(url: str, shown: str) -> None:
    import fakeredis

    from router.ledger.redis_store import RedisStore

    store = RedisStore(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(version=7)), url=url)
    assert store.url == shown
    assert store.failure_mode == "fail_closed" and store.journal is None


def test_an_unknown_failure_mode_is_refused() -> None:
    import fakeredis

    from router.ledger.redis_store import RedisStore

    with pytest.raises(ValueError, match=r"^failure_mode must be one of \('fail_closed', 'fail_open'\), not 'fail_soft'$"):
        RedisStore(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(version=7)), failure_mode="fail_soft")


# ---------------------------------------------------------------- journal identity across a restart
def _same_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Stores of one ledger (one URL, prefix, journal) on one fakeredis server, without a background probe."""
    import fakeredis

    from router.ledger.redis_store import RedisStore

    monkeypatch.setattr(redis_store_mod, "PROBE_INTERVAL_S", 60.0)
    server = fakeredis.FakeServer(version=7)

    def open_store(now: float = T0):
        client = fakeredis.FakeAsyncRedis(server=server)
        return RedisStore(client, url="redis://ledger.example:6379/0", prefix="p", failure_mode="fail_open",
                          journal_path=str(tmp_path / "journal"), clock=_Clock(now))

    return open_store, server, fakeredis.FakeAsyncRedis(server=server)


async def test_a_redis_that_came_back_empty_gets_the_ledger_id_the_store_knew(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store, server, raw = _same_ledger(tmp_path, monkeypatch)
    store = open_store()
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.9"), 600)).granted
    lid = (await raw.get("{p}:id")).decode()
    server.connected = False
    assert await store.settle("r1", D("0.75"))  # journaled, bound to the ledger's id
    server.connected = True
    await raw.flushall()  # restarted without persistence
    assert await store.spend(b) == D("0.75")  # replayed: the events are this ledger's
    assert (await raw.get("{p}:id")).decode() == lid
    await store.close()


async def test_another_process_finds_the_ledger_id_in_the_journal_after_redis_came_back_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process that knew the id is gone; a new one (a dashboard, ``router spend``) proposes the id its
    journal's events recorded, so a Redis that came back empty is the same ledger and the outage's spend
    is replayed into it, then read."""
    open_store, server, raw = _same_ledger(tmp_path, monkeypatch)
    writer = open_store()
    b = budget("tenant:a", "calendar:day", "5")
    assert (await writer.reserve("r1", [b], D("3"), 600)).granted
    lid = (await raw.get("{p}:id")).decode()
    server.connected = False
    assert await writer.settle("r1", D("2.5"))
    await writer.close()
    server.connected = True
    await raw.flushall()
    reader = open_store(T0 + 5)
    assert await reader.spend(b) == D("2.5")
    assert reader.journal_backlog() == 0
    assert reader.ledger_id == lid and (await raw.get("{p}:id")).decode() == lid
    await reader.close()


async def test_events_bound_to_another_ledger_id_are_left_in_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same URL and prefix, but Redis now holds another ledger's id (the old ledger is gone for good, and
    another store was first to reach the empty Redis): the journal's events are not this ledger's, so they
    are neither applied nor deleted."""
    open_store, server, raw = _same_ledger(tmp_path, monkeypatch)
    writer = open_store()
    b = budget("tenant:a", "calendar:day", "5")
    assert (await writer.reserve("r1", [b], D("3"), 600)).granted
    server.connected = False
    assert await writer.settle("r1", D("2.5"))
    await writer.close()
    server.connected = True
    await raw.flushall()
    await raw.set("{p}:id", "someone-else")
    reader = open_store(T0 + 5)
    assert await reader.spend(b) == 0
    assert reader.ledger_id == "someone-else"
    assert reader.journal_backlog() == 0
    assert writer.journal_backlog() == 1  # still in the file, for the ledger that wrote it
    await reader.close()


async def test_a_new_process_keeps_the_journaled_ledger_id_through_an_outage_of_an_empty_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new process (it never knew the ledger id) finds a journal bound to the ledger's id while Redis, which
    came back empty, is still down: its first attempt reads the id from the journal and fails; the next,
    less than a second later when Redis answers, must still propose that id (not a random one, which would
    make the journal another ledger's: its spend never replayed)."""
    open_store, server, raw = _same_ledger(tmp_path, monkeypatch)
    writer = open_store()
    b = budget("tenant:a", "calendar:day", "5")
    assert (await writer.reserve("r1", [b], D("3"), 600)).granted
    lid = (await raw.get("{p}:id")).decode()
    server.connected = False
    assert await writer.settle("r1", D("2.5"))
    await writer.close()
    server.connected = True
    await raw.flushall()  # restarted empty ...
    server.connected = False  # ... and not reachable yet
    reader = open_store(T0 + 5)
    with pytest.raises(StoreUnavailableError):
        await reader.replay_journal()  # proposes the journaled id; Redis does not answer
    server.connected = True
    assert await reader.replay_journal() == 1  # within the second: the same id, so the event is this ledger's
    assert reader.ledger_id == lid and (await raw.get("{p}:id")).decode() == lid
    assert await reader.spend(b) == D("2.5")
    await reader.close()


async def test_a_redis_that_came_back_empty_gets_the_known_ledger_id_with_nothing_journaled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_store, _, raw = _same_ledger(tmp_path, monkeypatch)
    store = open_store()
    assert (await store.reserve("r1", [budget("tenant:a", "calendar:day", "5")], D("3"), 600)).granted
    lid = (await raw.get("{p}:id")).decode()
    await raw.flushall()
    assert await store.replay_journal() == 0
    assert store.ledger_id == lid and (await raw.get("{p}:id")).decode() == lid
    await store.close()


# ---------------------------------------------------------------- the skip after a failure, replay errors
async def test_after_a_failure_fail_open_skips_redis_for_retry_interval_s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An operation that found Redis down makes the next ones skip it for retry_interval_s (they do not wait
    on a dead server): within it reservations are granted without holds even if Redis is back; a replay
    ends the skip, and Redis enforces the cap again."""
    import fakeredis

    from router.ledger.redis_store import RedisStore

    monkeypatch.setattr(redis_store_mod, "PROBE_INTERVAL_S", 60.0)
    server = fakeredis.FakeServer(version=7)
    store = RedisStore(fakeredis.FakeAsyncRedis(server=server), url="redis://skip.example:6379/0", prefix="p",
                       failure_mode="fail_open", journal_path=str(tmp_path / "journal"), clock=_Clock(T0), retry_interval_s=30.0)
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r0", [b], D("0.1"), 600)).granted
    server.connected = False
    assert (await store.reserve("r1", [b], D("0.9"), 600)).granted
    server.connected = True
    assert (await store.reserve("r2", [b], D("0.9"), 600)).granted  # skipped Redis: nothing held
    assert (await store.reserve("r3", [b], D("0.9"), 600)).granted
    assert await store.replay_journal() == 0  # ends the skip
    assert (await store.reserve("r4", [b], D("0.9"), 600)).granted  # 0.1 + 0.9: held in Redis
    assert not (await store.reserve("r5", [b], D("0.01"), 600)).granted
    await store.close()


async def test_a_replay_while_redis_is_down_refuses_naming_the_error_and_keeps_the_journal(tmp_path: Path) -> None:
    store, server, _ = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    server.connected = False
    assert await store.settle("r1", D("0.25"))
    with pytest.raises(StoreUnavailableError, match=r"is unreachable \(ConnectionError: FakeRedis is emulating a connection error\.\); refusing"):
        await store.replay_journal()
    assert store.journal_backlog() == 1
    # Redis answers, then drops the replay's settle: refused again, naming that error; nothing lost
    server.connected = True
    store._scripts["settle"] = _refusing(rexc.ConnectionError("Connection reset by peer"))
    with pytest.raises(StoreUnavailableError, match=r"is unreachable \(ConnectionError: Connection reset by peer\); refusing"):
        await store.replay_journal()
    assert store.journal_backlog() == 1
    await store.close()


# ---------------------------------------------------------------- a caller's own client, close
async def test_a_client_that_decodes_responses_gives_the_same_answers(tmp_path: Path) -> None:
    """A caller may pass its own client made with decode_responses=True (Redis replies as str, not bytes)."""
    import fakeredis

    from router.ledger.redis_store import RedisStore

    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(version=7), decode_responses=True)
    store = RedisStore(client, url="redis://own.example:6379/0", prefix="p", clock=_Clock(T0))
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.75"), 600)).granted
    denied = await store.reserve("r2", [b], D("0.5"), 600)
    assert (denied.granted, denied.denied_scope) == (False, b.id)
    assert await store.settle("r1", D("0.5")) is True
    assert await store.spend(b) == D("0.5")
    assert [s.budget.id for s in await store.list_scopes()] == [b.id]
    assert await store.publish_policy("prod", "0123456789ab", "default: flash\n") is True
    assert await store.policy_version("prod") == "0123456789ab"
    assert await store.policy_text("prod", "0123456789ab") == "default: flash\n"
    assert await store.policy_history("prod") == [("0123456789ab", dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC))]
    await store.close()


async def test_close_stops_a_probe_that_died_of_an_unexpected_error_and_closes_the_client_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import warnings

    open_store, server = _probed(tmp_path, monkeypatch)
    store = open_store()
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    store._scripts["ledger_id"] = _refusing(RuntimeError("unexpected"))
    server.connected = False
    assert (await store.reserve("r2", [b], D("0.25"), 600)).granted  # the probe starts, and dies of the error
    await asyncio.sleep(0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # aclose(), not the deprecated close()
        await store.close()  # neither the probe's error nor a warning escapes
    # a closed store used again (redis-py reconnects) still serves an outage in fail_open
    assert (await store.reserve("r3", [b], D("0.25"), 600)).granted
    server.connected = True
    await store.close()


async def test_an_outage_reservation_is_forgotten_exactly_when_its_redis_record_would_expire(tmp_path: Path) -> None:
    """The note of an outage reservation lives as long as its Redis record would (TTL + record grace): at that
    very millisecond it is gone, so a settle then cannot be attributed and is set aside, not booked."""
    store, server, clock = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "rolling:7d", "5")
    server.connected = False
    assert (await store.reserve("old", [b], D("0.1"), 1)).granted
    clock.now = T0 + 1 + 24 * 3600  # exactly the hold's second plus the 24 h record grace
    assert (await store.reserve("new", [b], D("0.4"), 60)).granted
    assert await store.settle("old", D("0.1"))
    assert await store.settle("new", D("0.4"))
    server.connected = True
    assert await store.replay_journal() == 2
    assert await store.spend(b) == D("0.4")


async def test_a_spend_read_while_redis_is_down_refuses_naming_the_error(tmp_path: Path) -> None:
    store, server, _ = _open(tmp_path, "fail_open", T0)
    server.connected = False
    with pytest.raises(StoreUnavailableError, match=UNREACHABLE):
        await store.spend(budget("tenant:a", "calendar:day", "1"))


async def test_a_budgets_last_seen_is_refreshed_at_most_once_a_minute_and_a_new_limit_at_once(tmp_path: Path) -> None:
    """list_scopes shows when a reservation last named each budget; a store refreshes that entry at most every
    60 s (META_REFRESH_MS), but a changed limit is written at once."""
    store, _, clock = _open(tmp_path, "fail_closed", T0)
    b = budget("tenant:a", "calendar:day", "5")
    assert (await store.reserve("r1", [b], D("0.1"), 60)).granted
    clock.now = T0 + 59.999
    assert (await store.reserve("r2", [b], D("0.1"), 60)).granted
    assert await store.list_scopes() == [ScopeInfo(b, dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC))]
    clock.now = T0 + 60
    assert (await store.reserve("r3", [b], D("0.1"), 60)).granted
    assert await store.list_scopes() == [ScopeInfo(b, dt.datetime(2026, 3, 10, 12, 1, tzinfo=UTC))]
    clock.now = T0 + 90
    bigger = budget("tenant:a", "calendar:day", "7")
    assert (await store.reserve("r4", [bigger], D("0.1"), 60)).granted
    [scope] = await store.list_scopes()
    assert (scope.budget.limit_usd, scope.last_seen) == (D("7"), dt.datetime(2026, 3, 10, 12, 1, 30, tzinfo=UTC))
