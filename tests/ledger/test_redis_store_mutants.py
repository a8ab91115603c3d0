"""RedisStore (router/ledger/redis_store.py) over fakeredis, in-process: the reservation each call returns,
fail_closed refusing per operation, and fail_open serving through an outage then replaying its journal into
the right budget, the right period, with the hold it took gone.

The outage is fakeredis's own (``FakeServer.connected = False``: every command raises ``ConnectionError``).
Written to kill mutmut survivors of redis_store.py (issue 12); amounts are hand-computed literals.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from router.errors import StoreUnavailableError
from router.ledger import Reservation
from tests.fixtures_redis import FakeClock
from tests.ledger.helpers import at, budget, open_fake_store

D = Decimal


_Clock = FakeClock
_open = open_fake_store


T0 = at("2026-03-10T12:00")


async def test_reserve_returns_the_reservation_granted_idempotent_and_denied(tmp_path: Path) -> None:
    store, _, _ = _open(tmp_path, "fail_closed", T0)
    b = budget("tenant:a", "calendar:day", "1")
    assert await store.reserve("r1", [b], D("0.7"), 30) == Reservation("r1", True, None, D("0.7"))
    assert await store.reserve("r1", [b], D("0.9"), 30) == Reservation("r1", True, None, D("0.7"))
    assert await store.reserve("r2", [b], D("0.4"), 30) == Reservation("r2", False, b.id, D(0))
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("0.7")


@pytest.mark.parametrize("operation", ["reserve", "settle", "release", "consume", "ramp"])
async def test_fail_closed_refuses_each_operation_while_redis_is_down(tmp_path: Path, operation: str) -> None:
    from router.ledger import QuotaPool

    store, server, _ = _open(tmp_path, "fail_closed", T0)
    b = budget("tenant:a", "calendar:day", "1")
    pool = QuotaPool("search", 5, "day", "UTC")
    assert (await store.reserve("r0", [b], D("0.5"), 60)).granted
    server.connected = False
    with pytest.raises(StoreUnavailableError, match=r"is unreachable \(ConnectionError: .+\); refusing to serve without it \(failure_mode=fail_closed\)"):
        if operation == "reserve":
            await store.reserve("r1", [b], D("0.1"), 60)
        elif operation == "settle":
            await store.settle("r0", D("0.2"))
        elif operation == "release":
            await store.release("r0")
        elif operation == "consume":
            await store.consume(pool, 2, "q1")
        else:
            await store.record_priority_tokens("flash", 1000)
    server.connected = True
    snap = await store.snapshot([b], [pool], ["flash"])
    assert snap.spend[b.id] == D("0.5")  # nothing changed meanwhile
    assert snap.pools["search"].used == 0
    assert snap.ramp["flash"].tokens_last_minute == 0
    assert not list(tmp_path.iterdir())  # and nothing was journaled


async def test_fail_open_reserve_and_settle_in_an_outage_land_in_the_budget_on_replay(tmp_path: Path) -> None:
    store, server, clock = _open(tmp_path, "fail_open", at("2026-03-10T23:59:59"))
    b = budget("tenant:a", "calendar:day", "1")
    server.connected = False
    # Redis down: granted (nothing can be held), and remembered so the settle knows its budgets
    assert await store.reserve("r1", [b], D("0.5"), 60) == Reservation("r1", True, None, D("0.5"))
    assert await store.settle("r1", D("0.3"))
    server.connected = True
    clock.now = at("2026-03-11T00:30")  # replayed after midnight: the spend belongs to the 10th
    assert await store.replay_journal() == 1
    assert await store.spend(b) == 0
    clock.now = at("2026-03-10T23:59:59.500")
    assert await store.spend(b) == D("0.3")
    assert store.journal_backlog() == 0


async def test_fail_open_settle_in_an_outage_books_the_hold_taken_before_it(tmp_path: Path) -> None:
    store, server, clock = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    other = budget("tenant:b", "calendar:day", "1")
    assert await store.reserve("r1", [b], D("0.6"), 600) == Reservation("r1", True, None, D("0.6"))
    server.connected = False
    assert await store.settle("r1", D("0.25"))
    server.connected = True
    clock.now = T0 + 5
    assert await store.replay_journal() == 1
    # the 0.6 hold is gone, 0.25 is spent, in its own budget only
    assert (await store.snapshot([b, other], [], [])).spend == {b.id: D("0.25"), other.id: D(0)}
    assert await store.spend(b) == D("0.25")
    assert (await store.reserve("r2", [b], D("0.75"), 60)).granted  # 0.25 + 0.75 = the limit exactly
    assert not await store.settle("r1", D("0.25"))  # settled once, never twice


async def test_fail_open_release_in_an_outage_frees_the_hold_on_replay(tmp_path: Path) -> None:
    store, server, clock = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.8"), 600)).granted
    server.connected = False
    assert await store.release("r1") is True
    server.connected = True
    clock.now = T0 + 5
    assert await store.replay_journal() == 1
    assert (await store.snapshot([b], [], [])).spend[b.id] == 0
    assert await store.spend(b) == 0
    assert (await store.reserve("r2", [b], D("1"), 60)).granted


@pytest.mark.parametrize("mode", ["fail_closed", "fail_open"])
async def test_a_rate_take_is_denied_and_a_rate_read_refused_while_redis_is_down(tmp_path: Path, mode: str) -> None:
    from router.ledger.rate import RatePool, RateTake

    store, server, _ = _open(tmp_path, mode, T0)
    pool = RatePool("count_tokens.p1", 5)
    assert await store.take_rate(pool) == RateTake("count_tokens.p1", True, 1, 5)
    server.connected = False
    assert await store.take_rate(pool, 2) == RateTake("count_tokens.p1", False, 0, 5)
    with pytest.raises(StoreUnavailableError, match="is unreachable"):
        await store.take_rate(pool, 0)
    server.connected = True
    await store.replay_journal()  # fail_open: ends the bypass of Redis after a failure right away
    assert await store.take_rate(pool, 0) == RateTake("count_tokens.p1", True, 1, 5)


async def test_an_outage_reservation_is_remembered_while_older_ones_are_forgotten(tmp_path: Path) -> None:
    store, server, clock = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "rolling:7d", "5")
    server.connected = False
    assert (await store.reserve("old", [b], D("0.1"), 1)).granted
    clock.now = T0 + 1 + 24 * 3600 + 0.001  # "old" is past its hold and record grace: forgotten now
    assert (await store.reserve("new", [b], D("0.4"), 60)).granted
    assert await store.settle("new", D("0.4"))
    server.connected = True
    assert await store.replay_journal() == 1
    assert await store.spend(b) == D("0.4")


async def test_a_snapshot_in_an_outage_reads_as_nothing_used_in_fail_open_and_refuses_in_fail_closed(
    tmp_path: Path,
) -> None:
    import datetime as dt

    from router.ledger import PoolUsage, QuotaPool, RampUsage

    b = budget("tenant:a", "calendar:day", "1")
    pool = QuotaPool("search", 3, "day", "UTC")
    closed, closed_server, _ = _open(tmp_path / "closed", "fail_closed", T0)
    closed_server.connected = False
    with pytest.raises(StoreUnavailableError, match=r"is unreachable \(ConnectionError: .+\)"):
        await closed.snapshot([b], [pool], ["pro"])
    store, server, _ = _open(tmp_path / "open", "fail_open", T0)
    assert (await store.reserve("r1", [b], D("0.5"), 60)).granted
    server.connected = False
    snap = await store.snapshot([b], [pool], ["pro"])
    assert snap.spend == {b.id: D(0)}
    assert snap.pools == {"search": PoolUsage("search", 0, 3, dt.datetime(2026, 3, 11, tzinfo=dt.timezone.utc))}
    assert snap.ramp == {"pro": RampUsage("pro", 0, 1_000_000)}


async def test_settle_refuses_a_negative_cost_naming_it(tmp_path: Path) -> None:
    store, _, _ = _open(tmp_path, "fail_closed", T0)
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.5"), 30)).granted
    with pytest.raises(ValueError, match=r"^actual cost: -0\.1 is negative$"):
        await store.settle("r1", D("-0.1"))
    assert await store.spend(b) == 0


async def test_an_outage_settle_of_another_processs_reservation_is_journaled_and_booked(tmp_path: Path) -> None:
    name = f"mut{uuid.uuid4().hex[:10]}"
    first, _, _ = _open(tmp_path / "first", "fail_open", T0, name)
    b = budget("tenant:a", "calendar:day", "1")
    assert (await first.reserve("r1", [b], D("0.6"), 600)).granted
    # another process (it never saw the reserve) settles it while Redis is down
    second, server, clock = _open(tmp_path / "second", "fail_open", T0, name)
    server.connected = False
    assert await second.settle("r1", D("0.35")) is True
    server.connected = True
    clock.now = T0 + 5
    assert await second.replay_journal() == 1
    assert (await second.snapshot([b], [], [])).spend[b.id] == D("0.35")
    assert await second.spend(b) == D("0.35")


def _unattributed(store) -> list[dict]:
    """The events a replay set aside for an operator (``<journal>.unattributed``)."""
    import json

    path = store.journal.unattributed
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_an_outage_settle_of_a_reservation_redis_never_knew_is_set_aside_not_booked(tmp_path: Path) -> None:
    store, server, clock = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    server.connected = False
    # nobody reserved "ghost" (or its record is gone): the settle is acknowledged and journaled without budgets
    assert await store.settle("ghost", D("0.3")) is True
    assert await store.release("ghost-2") is True  # a release of nothing: nothing to keep for anyone
    server.connected = True
    clock.now = T0 + 5
    assert await store.replay_journal() == 2
    assert await store.spend(b) == 0
    assert [(e["op"], e["rid"], e["nano"]) for e in _unattributed(store)] == [("settle", "ghost", 300_000_000)]
    assert store.journal_backlog() == 0


async def test_a_replayed_settle_and_release_of_known_reservations_are_not_set_aside(tmp_path: Path) -> None:
    store, server, clock = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    assert (await store.reserve("r2", [b], D("0.25"), 600)).granted
    server.connected = False
    assert await store.settle("r1", D("0.125"))
    assert await store.release("r2")
    server.connected = True
    clock.now = T0 + 5
    assert await store.replay_journal() == 2
    assert _unattributed(store) == []
    assert await store.spend(b) == D("0.125")


async def test_a_journal_event_of_an_unknown_kind_is_set_aside_for_an_operator(tmp_path: Path) -> None:
    store, server, clock = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    server.connected = False
    assert await store.settle("r1", D("0.5"))
    # written by a newer version of the router: kept, never guessed at
    store.journal.append({"op": "refund", "rid": "r1", "nano": 500_000_000})  # not even an event time
    server.connected = True
    clock.now = T0 + 5
    assert await store.replay_journal() == 2
    assert await store.spend(b) == D("0.5")
    assert [(e["op"], e["rid"]) for e in _unattributed(store)] == [("refund", "r1")]


async def test_a_reservation_granted_in_an_outage_is_booked_and_released_once_redis_is_back(tmp_path: Path) -> None:
    """Redis never saw these reservations (granted while it was down, nothing held): this process still knows
    their budgets, so a settle after Redis came back books the bill (not 'unknown reservation') and a release
    reports the reservation released now, once."""
    store, server, _ = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    server.connected = False
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    assert (await store.reserve("r2", [b], D("0.25"), 600)).granted
    server.connected = True
    assert await store.replay_journal() == 0  # nothing journaled; ends the bypass of Redis right away
    assert await store.settle("r1", D("0.3")) is True
    assert await store.release("r2") is True
    assert await store.spend(b) == D("0.3")
    assert await store.settle("r1", D("0.3")) is False  # booked once
    assert await store.release("r2") is False
    assert await store.spend(b) == D("0.3")
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("0.3")  # no hold left behind


def _on(server, url: str, journal: Path, now: float):
    """A fail_open RedisStore on the fakeredis ``server``, named by ``url`` (its ledger identity), with
    ``journal``: two URLs can name one Redis (127.0.0.1 and localhost), or one journal serve two Redis."""
    import fakeredis

    from router.ledger.redis_store import RedisStore

    client = fakeredis.FakeAsyncRedis(server=server)
    return RedisStore(client, url=url, prefix="p", failure_mode="fail_open", journal_path=str(journal), clock=_Clock(now))


async def test_an_outage_journal_is_replayed_by_a_process_reaching_the_same_ledger_by_another_name(tmp_path: Path) -> None:
    import fakeredis

    server = fakeredis.FakeServer(version=7)
    b = budget("tenant:a", "calendar:day", "1")
    first = _on(server, "redis://127.0.0.1:6379/0", tmp_path / "j", T0)
    assert (await first.reserve("r1", [b], D("0.5"), 600)).granted  # first contact: the ledger's id is known
    server.connected = False
    assert await first.settle("r1", D("0.375"))
    await first.close()  # that process is gone (its probe would replay the journal itself)
    server.connected = True
    # the same Redis under another host name: its events (bound to the ledger id) are this ledger's
    other = _on(server, "redis://localhost:6379/0", tmp_path / "j", T0 + 5)
    assert await other.replay_journal() == 1
    assert await other.spend(b) == D("0.375")
    assert other.journal_backlog() == 0


async def test_an_outage_journal_is_never_replayed_into_another_ledger(tmp_path: Path) -> None:
    import fakeredis

    server_a, server_b = fakeredis.FakeServer(version=7), fakeredis.FakeServer(version=7)
    b = budget("tenant:a", "calendar:day", "5")
    server_a.connected = False
    # a process that never reached its Redis: its events are bound by the ledger's URL and prefix
    a = _on(server_a, "redis://a.example:6379/0", tmp_path / "shared", T0)
    assert (await a.reserve("a-1", [b], D("1"), 600)).granted
    assert await a.settle("a-1", D("1"))
    other = _on(server_b, "redis://b.example:6379/0", tmp_path / "shared", T0)
    assert (await other.reserve("b-1", [b], D("0.5"), 600)).granted
    assert await other.settle("b-1", D("0.5"))
    assert await other.replay_journal() == 0
    assert await other.spend(b) == D("0.5")
    assert other.journal_backlog() == 0 and a.journal_backlog() == 1
    server_a.connected = True
    assert await a.spend(b) == D("1")  # a read replays the journal first (if a's probe has not already)
    assert a.journal_backlog() == 0
    assert await other.spend(b) == D("0.5")


async def test_a_replayed_release_leaves_a_late_bill_bookable(tmp_path: Path) -> None:
    """A release journaled in an outage is replayed as a release, not as a $0 settle: the reservation's
    bill, if it arrives after all, is still booked (as it would be without the outage)."""
    store, server, clock = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    server.connected = False
    assert await store.release("r1") is True
    server.connected = True
    clock.now = T0 + 5
    assert await store.replay_journal() == 1
    assert await store.spend(b) == 0
    assert await store.settle("r1", D("0.2")) is True
    assert await store.spend(b) == D("0.2")


def _quarantined(store) -> list[dict]:
    """The events a replay moved aside as invalid (``<journal>.quarantine``)."""
    import json

    path = store.journal.quarantine_path
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_a_journal_event_naming_an_invalid_budget_is_quarantined_not_booked_nor_blocking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The journal is a local file: a budget id in it is validated like one from the policy, so an edited or
    corrupt line never books spend under a key outside the ledger's budgets. It is moved aside (with the
    file and line it was read from, and a warning saying so) and the replay goes on: the events around it
    are booked, and the journal is not left to fail every later operation until someone deletes it."""
    import logging

    store, server, clock = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    assert (await store.reserve("r2", [b], D("0.25"), 600)).granted
    server.connected = False
    assert await store.settle("r1", D("0.125"))
    store.journal.append({"op": "settle", "rid": "r9", "nano": 5, "bids": ["ten ant|rolling:1h"], "at": int(T0 * 1000)})
    assert await store.settle("r2", D("0.0625"))
    server.connected = True
    clock.now = T0 + 5
    with caplog.at_level(logging.WARNING, logger="router.ledger"):
        assert await store.replay_journal() == 2
    assert await store.spend(b) == D("0.1875")  # 0.125 + 0.0625, both holds gone
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("0.1875")
    [entry] = _quarantined(store)
    assert entry["event"]["rid"] == "r9" and entry["event"]["bids"] == ["ten ant|rolling:1h"]
    assert entry["line"] == 2 and entry["file"].startswith(str(tmp_path / "journal.replaying."))
    assert entry["reason"].startswith("ValueError: invalid budget scope 'ten ant'")
    [record] = [r for r in caplog.records if r.name == "router.ledger"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        f"ledger journal {entry['file']} line 2: {entry['reason']}; not replayed, moved to {store.journal.quarantine_path}"
    )
    assert store.journal_backlog() == 0
    assert _unattributed(store) == []


async def test_an_invalid_journal_event_never_stops_fail_open_operations(tmp_path: Path) -> None:
    """A bad line left in the journal (found on the first operation's replay) is moved aside once: the
    operation is served, and the next ones find nothing left to replay."""
    store, _, _ = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    store.journal.append({"op": "settle", "rid": "r9", "nano": 5, "bids": ["ten ant|rolling:1h"], "at": int(T0 * 1000)})
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    assert await store.settle("r1", D("0.3")) is True
    assert await store.spend(b) == D("0.3")
    assert len(_quarantined(store)) == 1
    assert store.journal_backlog() == 0


_TOP = 2**53 - 1  # money.MAX_NANO: the ledger's exact range
_AT_TOP = 2**63 - 1


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        # would take 0.4 off the budget's spend
        ({"op": "settle", "rid": "r1", "nano": -400_000_000}, f"ValueError: nano must be an integer from 0 to {_TOP}, not -400000000"),
        ({"op": "settle", "rid": "r1", "nano": "100"}, f"ValueError: nano must be an integer from 0 to {_TOP}, not '100'"),
        ({"op": "settle", "rid": "r1", "nano": True}, f"ValueError: nano must be an integer from 0 to {_TOP}, not True"),
        ({"op": "settle", "rid": "r1", "nano": 2**53}, f"ValueError: nano must be an integer from 0 to {_TOP}, not {2**53}"),
        # a settle without its amount would mark the reservation settled at $0 and lose a later bill
        ({"op": "settle", "rid": "r1"}, "KeyError: 'nano'"),
        ({"op": "settle", "rid": "r1", "nano": 100, "bids": "tenant:a|calendar:day"},
         "TypeError: bids must be a list of budget ids, not 'tenant:a|calendar:day'"),
        ({"op": "settle", "rid": "r1", "nano": 100, "bids": [7]}, "TypeError: a budget id must be a string, not 7"),
        ({"op": "settle", "rid": "r1", "nano": 100, "held": -1}, f"ValueError: held must be an integer from 0 to {_TOP}, not -1"),
        ({"op": "release", "rid": "r1", "held": 2**53}, f"ValueError: held must be an integer from 0 to {_TOP}, not {2**53}"),
        ({"op": "settle", "rid": "r1", "nano": 100, "at": "noon"}, f"ValueError: at must be an integer from 0 to {_AT_TOP}, not 'noon'"),
        ({"op": "settle", "rid": "r 1", "nano": 100},
         "ValueError: invalid reservation id 'r 1': use 1-256 printable ASCII characters without spaces or braces"),
        ({"op": "release"}, "KeyError: 'rid'"),
        ({"op": "consume", "pool": {"id": "search", "free_units": 5, "period": "week"}, "units": 1, "rid": "q1"},
         "ValueError: quota pool search: period must be day or month, not 'week'"),
        ({"op": "consume", "pool": ["search", 5, "day"], "units": 1, "rid": "q1"},
         "TypeError: pool must be an object, not ['search', 5, 'day']"),
        ({"op": "consume", "pool": {"id": "search", "free_units": 5, "period": "day", "timezone": "UTC"}, "units": -3, "rid": "q1"},
         "ValueError: units must be a non-negative integer, not -3"),
        ({"op": "ramp", "family": "flash", "tokens": -1000, "event": "e1"}, "ValueError: tokens must be a non-negative integer, not -1000"),
        ({"op": "ramp", "family": "Flash!", "tokens": 1000, "event": "e1"},
         "ValueError: invalid model family 'Flash!': use lower-case letters, digits, _ . -"),
        ({"op": "ramp", "family": "flash", "tokens": 1000, "event": "e 1"},
         "ValueError: invalid event id 'e 1': use 1-256 printable ASCII characters without spaces or braces"),
    ],
)
async def test_an_invalid_journal_event_is_quarantined_and_changes_no_counter(tmp_path: Path, event: dict, reason: str) -> None:
    from router.ledger import QuotaPool

    store, _, clock = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    pool = QuotaPool("search", 5, "day", "UTC")
    assert (await store.reserve("r0", [b], D("0.5"), 600)).granted
    assert await store.settle("r0", D("0.5"))
    assert (await store.reserve("r1", [b], D("0.25"), 600)).granted
    written = {**event, **({"at": int(T0 * 1000)} if "at" not in event else {})}
    store.journal.append(written)
    clock.now = T0 + 5
    assert await store.replay_journal() == 0
    assert [(e["event"], e["reason"]) for e in _quarantined(store)] == [(written, reason)]
    snap = await store.snapshot([b], [pool], ["flash"])
    assert snap.spend[b.id] == D("0.75")  # 0.5 settled + r1's 0.25 still held
    assert snap.pools["search"].used == 0 and snap.ramp["flash"].tokens_last_minute == 0
    assert await store.spend(b) == D("0.5")
    assert await store.settle("r1", D("0.2")) is True  # r1 was not settled by the bad line
    assert await store.spend(b) == D("0.7")


async def test_journal_amounts_up_to_the_ledgers_exact_range_are_replayed(tmp_path: Path) -> None:
    """The largest amount the ledger counts exactly (2^53 - 1 nano-USD) is a valid journaled amount."""
    store, _, clock = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.25"), 600)).granted
    store.journal.append({"op": "release", "rid": "r1", "held": _TOP, "nano": _TOP, "at": int(T0 * 1000)})
    clock.now = T0 + 5
    assert await store.replay_journal() == 1
    assert _quarantined(store) == []
    assert (await store.snapshot([b], [], [])).spend[b.id] == 0  # released: the hold is gone


async def test_consumptions_journaled_in_an_outage_are_each_counted_once_on_replay(tmp_path: Path) -> None:
    import datetime as dt

    from router.ledger import Consumed, PoolUsage, QuotaPool

    store, server, clock = _open(tmp_path, "fail_open", T0)
    pool = QuotaPool("search", 5, "day", "UTC")
    assert await store.consume(pool, 1, "q0") == Consumed(1, 0)
    server.connected = False
    # Redis down: every unit billed (the bill may be high, never low), each request journaled
    assert await store.consume(pool, 2, "q1") == Consumed(0, 2)
    assert await store.consume(pool, 3, "q2") == Consumed(0, 3)
    server.connected = True
    clock.now = T0 + 5
    assert await store.replay_journal() == 2
    end = dt.datetime(2026, 3, 11, tzinfo=dt.timezone.utc)
    assert await store.pool_usage(pool) == PoolUsage("search", 6, 5, end)
    await store.consume(pool, 1, "q1")  # q1 was counted: a retry of it is not
    assert await store.pool_usage(pool) == PoolUsage("search", 6, 5, end)


async def test_a_ramp_event_replayed_twice_counts_its_priority_tokens_once(tmp_path: Path) -> None:
    """A crash between applying a journal and deleting it replays its events again (Journal.take): a priority
    ramp event carries its own id, so the second replay adds nothing."""
    import json

    store, server, clock = _open(tmp_path, "fail_open", T0)
    server.connected = False
    await store.record_priority_tokens("flash", 40_000)
    await store.record_priority_tokens("flash", 2_000)  # another event: its own id, counted
    server.connected = True
    first, _ = [json.loads(line) for line in store.journal.path.read_text().splitlines()]
    store.journal.append(first)  # the first event again, as a replay cut by a crash leaves it
    clock.now = T0 + 5
    assert await store.replay_journal() == 3
    assert (await store.ramp_usage("flash")).tokens_last_minute == 42_000


async def test_a_fail_closed_store_has_no_journal_to_replay(tmp_path: Path) -> None:
    store, _, _ = _open(tmp_path, "fail_closed", T0)
    assert store.journal is None
    assert await store.replay_journal() == 0
    assert store.journal_backlog() == 0


async def test_one_request_consuming_two_pools_counts_in_each(tmp_path: Path) -> None:
    from router.ledger import Consumed, QuotaPool

    store, _, _ = _open(tmp_path, "fail_closed", T0)
    search, maps = QuotaPool("search", 5, "day", "UTC"), QuotaPool("maps", 1, "day", "UTC")
    assert await store.consume(search, 2, "req-1") == Consumed(2, 0)
    assert await store.consume(maps, 2, "req-1") == Consumed(1, 1)  # its own pool: not a retry of the first
    assert (await store.pool_usage(search)).used == 2
    assert (await store.pool_usage(maps)).used == 2


async def test_priority_tokens_count_in_the_last_sixty_seconds_at_any_sub_second_clock(tmp_path: Path) -> None:
    """The ramp counts the current second's bucket and the 59 before it, whatever the millisecond: a write
    half a second into second 59 keeps second 0's tokens; half a second into second 60 they are gone."""
    store, _, clock = _open(tmp_path, "fail_closed", T0 + 0.25)
    await store.record_priority_tokens("flash", 40_000)
    clock.now = T0 + 59.5
    await store.record_priority_tokens("flash", 2_000)
    assert (await store.ramp_usage("flash")).tokens_last_minute == 42_000
    clock.now = T0 + 60.5
    assert (await store.ramp_usage("flash")).tokens_last_minute == 2_000


async def test_a_ramp_streak_of_use_in_the_middle_of_each_minute_grows_the_limit(tmp_path: Path) -> None:
    """Use half-way through each of 11 consecutive minutes is 10 minutes of sustained use (+50 %): the
    minute of an event is a whole minute, so 12:01:30 follows 12:00:30 without a gap."""
    store, _, clock = _open(tmp_path, "fail_closed", T0 + 30)
    for _ in range(11):
        await store.record_priority_tokens("pro", 10_000)
        clock.now += 60
    clock.now -= 60
    assert (await store.ramp_usage("pro")).limit_tpm == 1_500_000
    clock.now += 60  # 12:11:30, the minute after the last use: not a whole idle minute yet
    assert (await store.ramp_usage("pro")).limit_tpm == 1_500_000


async def test_priority_tokens_replayed_at_the_first_second_of_the_window_still_count(tmp_path: Path) -> None:
    store, server, clock = _open(tmp_path, "fail_open", T0 + 0.25)
    server.connected = False
    await store.record_priority_tokens("flash", 40_000)  # journaled in second 0
    server.connected = True
    clock.now = T0 + 59.5  # second 0 is the oldest of the 60 seconds counted now
    assert await store.replay_journal() == 1
    assert (await store.ramp_usage("flash")).tokens_last_minute == 40_000


async def test_a_single_priority_token_counts_and_none_is_not_use(tmp_path: Path) -> None:
    store, _, clock = _open(tmp_path, "fail_closed", T0 + 30)
    await store.record_priority_tokens("flash", 1)
    assert (await store.ramp_usage("flash")).tokens_last_minute == 1
    # zero tokens in each of the next 11 minutes is no use: the streak ended, the limit is the base one
    for _ in range(11):
        clock.now += 60
        await store.record_priority_tokens("flash", 0)
    assert (await store.ramp_usage("flash")).tokens_last_minute == 0
    assert (await store.ramp_usage("flash")).limit_tpm == 4_000_000


async def test_settling_one_of_two_holds_leaves_exactly_the_other_held(tmp_path: Path) -> None:
    store, _, _ = _open(tmp_path, "fail_closed", T0)
    b = budget("tenant:a", "rolling:1h", "1")
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    assert (await store.reserve("r2", [b], D("0.25"), 600)).granted
    assert await store.settle("r1", D("0.125"))
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("0.375")  # 0.125 spent + r2's 0.25 held
    assert (await store.reserve("r3", [b], D("0.625"), 600)).granted  # exactly up to the 1 USD cap
    assert not (await store.reserve("r4", [b], D("0.000000001"), 600)).granted
    assert await store.release("r2")
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("0.75")  # 0.125 spent + r3's 0.625 held


async def test_another_process_settles_a_reservation_of_two_budgets_into_both(tmp_path: Path) -> None:
    """The settling process never saw the reserve: Redis's record names the budgets, and each is booked."""
    name = f"mut{uuid.uuid4().hex[:10]}"
    first, _, _ = _open(tmp_path / "first", "fail_closed", T0, name)
    day, hour = budget("tenant:a", "calendar:day", "1"), budget("global", "rolling:1h", "2")
    assert (await first.reserve("r1", [day, hour], D("0.5"), 600)).granted
    second, _, _ = _open(tmp_path / "second", "fail_closed", T0 + 1, name)
    assert await second.settle("r1", D("0.375")) is True
    assert await second.spend(day) == D("0.375")
    assert await second.spend(hour) == D("0.375")
    assert (await second.snapshot([day, hour], [], [])).spend == {day.id: D("0.375"), hour.id: D("0.375")}


async def test_an_outage_reservation_with_a_long_hold_is_remembered_for_its_ttl_plus_the_grace(tmp_path: Path) -> None:
    store, server, clock = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "rolling:7d", "5")
    server.connected = False
    assert (await store.reserve("long", [b], D("1"), 7200)).granted  # a 2 h hold, granted while Redis is down
    clock.now = T0 + 7200 + 23 * 3600  # within its 2 h + 24 h (RECORD_GRACE_MS)
    assert (await store.reserve("other", [b], D("0.1"), 60)).granted  # prunes what is past its keep-until
    assert await store.settle("long", D("0.75"))
    server.connected = True
    assert await store.replay_journal() == 1
    assert await store.spend(b) == D("0.75")


async def test_a_settle_after_redis_restarted_empty_still_books_the_bill(tmp_path: Path) -> None:
    """Redis lost everything (restarted without persistence) between reserve and settle: the process that
    reserved still knows the budgets, so the bill is booked, not refused as an unknown reservation."""
    store, server, _ = _open(tmp_path, "fail_closed", T0)
    b = budget("tenant:a", "calendar:day", "1")
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    await store.client.flushall()  # the restart: records, holds and spend gone
    assert await store.settle("r1", D("0.3")) is True
    assert await store.spend(b) == D("0.3")
    assert (await store.snapshot([b], [], [])).spend[b.id] == D("0.3")
    assert await store.settle("r1", D("0.3")) is False  # and only once


async def test_a_long_holds_settle_after_redis_restarted_empty_is_booked_within_its_ttl_plus_the_grace(
    tmp_path: Path,
) -> None:
    store, _, clock = _open(tmp_path, "fail_closed", T0)
    b = budget("tenant:a", "rolling:7d", "5")
    assert (await store.reserve("long", [b], D("1"), 7200)).granted  # a 2 h hold
    clock.now = T0 + 7200 + 23 * 3600  # within its 2 h + 24 h (RECORD_GRACE_MS)
    assert (await store.reserve("other", [b], D("0.1"), 60)).granted  # prunes what is past its keep-until
    await store.client.flushall()  # Redis restarted empty
    assert await store.settle("long", D("0.75")) is True
    assert await store.spend(b) == D("0.75")


async def test_an_outage_reservation_released_in_the_outage_still_books_a_late_bill_after_the_replay(tmp_path: Path) -> None:
    """Granted and released while Redis was down (Redis never saw the reservation): the replayed release
    must leave the reservation's budgets behind, so a bill that arrives after all is booked (as the memory
    ledger books a settle after a release), not acknowledged with nothing booked."""
    store, server, clock = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    server.connected = False
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    assert await store.release("r1") is True
    server.connected = True
    clock.now = T0 + 5
    assert await store.replay_journal() == 1
    assert await store.spend(b) == 0
    assert await store.settle("r1", D("0.2")) is True
    assert await store.spend(b) == D("0.2")
    assert await store.settle("r1", D("0.2")) is False  # booked once
    assert await store.spend(b) == D("0.2")


async def test_an_outage_reservation_released_then_settled_in_the_outage_books_the_bill_on_replay(tmp_path: Path) -> None:
    """The same, with the late bill also arriving during the outage: the settle is journaled after the release
    (the process forgot the budgets at the release) and replayed after it; its 0.35 lands in the budget."""
    store, server, clock = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    server.connected = False
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    assert await store.release("r1") is True
    assert await store.settle("r1", D("0.35")) is True
    server.connected = True
    clock.now = T0 + 5
    assert await store.replay_journal() == 2
    assert await store.spend(b) == D("0.35")
    assert _unattributed(store) == []


async def test_an_outage_reservation_released_once_redis_is_back_still_books_a_late_bill(tmp_path: Path) -> None:
    """The live path of the same: granted in the outage, released after Redis came back (the release creates
    the reservation's record), then billed after all: 0.15 is booked, once."""
    store, server, _ = _open(tmp_path, "fail_open", T0)
    b = budget("tenant:a", "calendar:day", "1")
    server.connected = False
    assert (await store.reserve("r1", [b], D("0.5"), 600)).granted
    server.connected = True
    assert await store.replay_journal() == 0  # ends the bypass of Redis right away
    assert await store.release("r1") is True
    assert await store.settle("r1", D("0.15")) is True
    assert await store.settle("r1", D("0.15")) is False
    assert await store.spend(b) == D("0.15")
