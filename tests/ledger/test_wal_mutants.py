"""The settle log (router/ledger/wal.py) on its own: segment files, fsync, rotation, torn tails, recovery.

Pure unit tests (no Redis): each pins a behaviour a deferred-settlement store relies on to never lose or
double-count an acknowledged settle. Written to kill mutmut survivors of wal.py (issue 12).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from router.ledger import wal
from router.ledger.wal import SettleLog


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record every descriptor the settle log fsyncs (the real fsync still runs)."""
    calls: list[int] = []
    real = os.fsync

    def spy(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(wal.os, "fsync", spy)
    return calls


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A settable monotonic clock for rotation ages (``clock[0]`` is now)."""
    now = [1000.0]
    monkeypatch.setattr(wal.time, "monotonic", lambda: now[0])
    return now


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------------------------------- construction
def test_default_fsync_mode_is_batch_and_an_append_leaves_the_segment_to_sync(tmp_path: Path) -> None:
    log = SettleLog(tmp_path)
    assert log.fsync == "batch"
    log.append({"id": "r1"})
    assert log.dirty_fd() is not None


def test_an_unknown_fsync_mode_is_refused_naming_the_modes_and_the_value(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"settle log fsync must be one of \('batch', 'always'\), not 'sometimes'"):
        SettleLog(tmp_path, fsync="sometimes")


def test_a_missing_nested_directory_is_created(tmp_path: Path) -> None:
    log = SettleLog(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b" / f"{log.owner}.lock").is_file()


def test_a_second_log_in_an_existing_directory_is_fine(tmp_path: Path) -> None:
    first = SettleLog(tmp_path)
    second = SettleLog(tmp_path)
    assert first.owner != second.owner
    assert sorted(p.name for p in tmp_path.glob("*.lock")) == sorted([f"{first.owner}.lock", f"{second.owner}.lock"])


def test_lock_and_segment_files_are_private_to_the_owner(tmp_path: Path) -> None:
    log = SettleLog(tmp_path)
    log.append({"id": "r1"})
    assert log.current is not None
    assert stat.S_IMODE(os.stat(tmp_path / f"{log.owner}.lock").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(log.current).st_mode) == 0o600


def test_a_fresh_log_has_no_segment_and_no_entries(tmp_path: Path) -> None:
    log = SettleLog(tmp_path)
    assert log.current is None
    assert log.count == 0
    assert log.dirty_fd() is None
    assert log.rotate() is None
    assert log.seal() is None
    assert list(tmp_path.glob("*.jsonl")) == []


# ---------------------------------------------------------------------------------------------- appending
def test_entries_are_compact_json_lines_in_the_first_segment(tmp_path: Path) -> None:
    log = SettleLog(tmp_path)
    log.append({"id": "r1", "nano": 5})
    log.append({"id": "r2", "nano": 7})
    assert log.current == tmp_path / f"{log.owner}.000000001.jsonl"
    assert log.current.read_bytes() == b'{"id":"r1","nano":5}\n{"id":"r2","nano":7}\n'
    assert SettleLog.entries(log.current) == [{"id": "r1", "nano": 5}, {"id": "r2", "nano": 7}]
    assert log.count == 2


def test_each_rotation_starts_the_next_numbered_segment(tmp_path: Path) -> None:
    log = SettleLog(tmp_path)
    log.append({"id": "r1"})
    first = log.seal()
    assert first == tmp_path / f"{log.owner}.000000001.jsonl"
    assert log.current is None and log.count == 0
    log.append({"id": "r2"})
    assert log.current == tmp_path / f"{log.owner}.000000002.jsonl"
    assert log.count == 1
    log.append({"id": "r3"})
    log.seal()
    assert SettleLog.entries(first) == [{"id": "r1"}]
    assert SettleLog.entries(tmp_path / f"{log.owner}.000000002.jsonl") == [{"id": "r2"}, {"id": "r3"}]


def test_own_segments_lists_sealed_segments_oldest_first_without_the_open_one(tmp_path: Path) -> None:
    log = SettleLog(tmp_path)
    other = SettleLog(tmp_path)
    other.append({"id": "x"})
    log.append({"id": "r1"})
    log.seal()
    log.append({"id": "r2"})
    log.seal()
    log.append({"id": "r3"})
    assert log.own_segments() == [
        tmp_path / f"{log.owner}.000000001.jsonl",
        tmp_path / f"{log.owner}.000000002.jsonl",
    ]


def test_fsync_always_syncs_every_entry_and_leaves_nothing_dirty(tmp_path: Path, fsyncs: list[int]) -> None:
    log = SettleLog(tmp_path, fsync="always")
    assert log.fsync == "always"
    log.append({"id": "r1"})
    log.append({"id": "r2"})
    assert len(fsyncs) == 2
    assert log.dirty_fd() is None
    rotated = log.rotate()
    assert rotated is not None and rotated[2] is False
    SettleLog.finish(rotated[1], rotated[2])
    log.append({"id": "r3"})
    assert log.dirty_fd() is None
    assert len(fsyncs) == 3


def test_fsync_batch_defers_the_sync_to_the_flusher(tmp_path: Path, fsyncs: list[int]) -> None:
    log = SettleLog(tmp_path, fsync="batch")
    log.append({"id": "r1"})
    log.append({"id": "r2"})
    assert fsyncs == []
    fd = log.dirty_fd()
    assert fd is not None
    # handed out once: the caller syncs it; nothing new is unsynced until the next append
    assert log.dirty_fd() is None
    log.append({"id": "r3"})
    assert log.dirty_fd() == fd


def test_rotate_hands_over_the_unsynced_segment_and_finish_syncs_and_closes_it(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    log = SettleLog(tmp_path)
    log.append({"id": "r1"})
    rotated = log.rotate()
    assert rotated is not None
    path, fd, dirty = rotated
    assert path == tmp_path / f"{log.owner}.000000001.jsonl"
    assert dirty is True
    assert log.count == 0
    assert log.dirty_fd() is None
    SettleLog.finish(fd, dirty)
    assert fsyncs == [fd]
    assert not _is_open(fd)


def test_finish_of_a_clean_segment_closes_without_fsync(tmp_path: Path, fsyncs: list[int]) -> None:
    log = SettleLog(tmp_path)
    log.append({"id": "r1"})
    assert log.dirty_fd() is not None  # the flusher synced it
    rotated = log.rotate()
    assert rotated is not None and rotated[2] is False
    SettleLog.finish(rotated[1], rotated[2])
    assert fsyncs == []
    assert not _is_open(rotated[1])


def test_seal_syncs_closes_and_returns_the_segment(tmp_path: Path, fsyncs: list[int]) -> None:
    log = SettleLog(tmp_path)
    log.append({"id": "r1"})
    fd = log.dirty_fd()
    log.append({"id": "r2"})
    assert fd is not None
    sealed = log.seal()
    assert sealed == tmp_path / f"{log.owner}.000000001.jsonl"
    assert fsyncs == [fd]
    assert not _is_open(fd)
    assert log.current is None


# ---------------------------------------------------------------------------------------------- rotation
def test_rotation_is_due_at_exactly_the_maximum_age(tmp_path: Path, clock: list[float]) -> None:
    log = SettleLog(tmp_path)
    assert log.rotation_due(1.0) is False  # nothing open
    log.append({"id": "r1"})
    clock[0] = 1000.5
    assert log.rotation_due(1.0) is False
    clock[0] = 1001.0
    assert log.rotation_due(1.0) is True


def test_rotation_is_due_at_exactly_the_maximum_entries(tmp_path: Path, clock: list[float]) -> None:
    log = SettleLog(tmp_path)
    log.append({"id": "r1"})
    assert log.rotation_due(60.0, max_entries=2) is False
    log.append({"id": "r2"})
    assert log.rotation_due(60.0, max_entries=2) is True


def test_rotation_by_default_after_100_000_entries(tmp_path: Path, clock: list[float]) -> None:
    log = SettleLog(tmp_path)
    log.append({"id": "r1"})
    log.count = 99_999
    assert log.rotation_due(60.0) is False
    log.count = 100_000
    assert log.rotation_due(60.0) is True


# ---------------------------------------------------------------------------------------------- reading
def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    segment = tmp_path / "dead-00000000.000000001.jsonl"
    segment.write_bytes(b'{"id":"r1"}\n{"id":"r2"}\n{"id":"r3","na')
    assert SettleLog.entries(segment) == [{"id": "r1"}, {"id": "r2"}]


def test_a_torn_line_with_broken_utf8_is_skipped_and_blank_lines_do_not_stop_reading(tmp_path: Path) -> None:
    segment = tmp_path / "dead-00000000.000000001.jsonl"
    segment.write_bytes(b'{"id":"r1"}\n\n  \n{"id":"r\xc3\n{"id":"r2"}\n{"id":"\xe2\x82')
    assert SettleLog.entries(segment) == [{"id": "r1"}, {"id": "r2"}]


def test_a_segment_deleted_meanwhile_reads_as_empty(tmp_path: Path) -> None:
    assert SettleLog.entries(tmp_path / "gone.000000001.jsonl") == []


def test_backlog_counts_the_entries_of_every_process_in_the_directory(tmp_path: Path) -> None:
    log = SettleLog(tmp_path)
    other = SettleLog(tmp_path)
    log.append({"id": "r1"})
    log.seal()
    log.append({"id": "r2"})
    other.append({"id": "x1"})
    (tmp_path / "dead-00000000.000000001.jsonl").write_bytes(b'{"id":"d1"}\n{"id":"d2"}\n{"id":"d3"')
    assert log.backlog() == 5


# ---------------------------------------------------------------------------------------------- recovery
def test_orphans_lists_every_other_log_with_its_segments_but_not_its_own(tmp_path: Path) -> None:
    log = SettleLog(tmp_path)
    log.append({"id": "mine"})
    log.seal()
    # owner names start with a pid (digits), so "zz-dead" sorts after this log's own lock
    (tmp_path / "zz-dead.lock").touch()
    (tmp_path / "zz-dead.000000002.jsonl").write_bytes(b'{"id":"d2"}\n')
    (tmp_path / "zz-dead.000000001.jsonl").write_bytes(b'{"id":"d1"}\n')
    (tmp_path / "0-empty.lock").touch()
    assert log.orphans() == [
        ("0-empty", []),
        ("zz-dead", [tmp_path / "zz-dead.000000001.jsonl", tmp_path / "zz-dead.000000002.jsonl"]),
    ]


def test_adopt_takes_a_dead_owners_lock_and_bury_removes_its_log(tmp_path: Path) -> None:
    log = SettleLog(tmp_path)
    (tmp_path / "zz-dead.lock").touch()
    (tmp_path / "zz-dead.000000001.jsonl").write_bytes(b'{"id":"d1"}\n')
    (tmp_path / "zz-dead.000000002.jsonl").write_bytes(b'{"id":"d2"}\n')
    fd = log.adopt("zz-dead")
    assert fd is not None
    # adopted: nobody else can take it while this process applies its entries
    assert SettleLog(tmp_path).adopt("zz-dead") is None
    log.bury("zz-dead", fd)
    assert not _is_open(fd)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("zz-dead")) == []
    assert "zz-dead" not in [owner for owner, _ in log.orphans()]


def test_adopt_refuses_a_live_owner_and_a_missing_one(tmp_path: Path) -> None:
    log = SettleLog(tmp_path)
    alive = SettleLog(tmp_path)
    alive.append({"id": "a1"})
    assert log.adopt(alive.owner) is None
    assert log.adopt("no-such-owner") is None
    # the live owner keeps appending to its log untouched
    alive.append({"id": "a2"})
    assert alive.current is not None and SettleLog.entries(alive.current) == [{"id": "a1"}, {"id": "a2"}]


def test_a_refused_adoption_does_not_leak_a_descriptor(tmp_path: Path) -> None:
    log = SettleLog(tmp_path)
    alive = SettleLog(tmp_path)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        assert log.adopt(alive.owner) is None
    assert len(os.listdir("/proc/self/fd")) == before


def test_close_without_remove_leaves_the_log_for_adoption(tmp_path: Path) -> None:
    log = SettleLog(tmp_path)
    log.append({"id": "r1"})
    log.close(remove=False)
    survivor = SettleLog(tmp_path)
    assert survivor.orphans() == [(log.owner, [tmp_path / f"{log.owner}.000000001.jsonl"])]
    fd = survivor.adopt(log.owner)
    assert fd is not None
    assert SettleLog.entries(tmp_path / f"{log.owner}.000000001.jsonl") == [{"id": "r1"}]
    survivor.bury(log.owner, fd)
    assert survivor.orphans() == []


def test_close_with_remove_deletes_the_log(tmp_path: Path) -> None:
    log = SettleLog(tmp_path)
    log.append({"id": "r1"})
    log.seal()
    log.append({"id": "r2"})
    log.close(remove=True)
    assert list(tmp_path.iterdir()) == []


def test_adopt_gives_up_on_a_log_another_adopter_buried_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = SettleLog(tmp_path)
    (tmp_path / "zz-dead.lock").touch()
    real_flock = wal.fcntl.flock

    def flock_then_buried(fd: int, op: int) -> None:
        real_flock(fd, op)
        if op & wal.fcntl.LOCK_NB:  # the other adopter finished and removed the lock file just now
            (tmp_path / "zz-dead.lock").unlink()

    monkeypatch.setattr(wal.fcntl, "flock", flock_then_buried)
    before = len(os.listdir("/proc/self/fd"))
    assert log.adopt("zz-dead") is None
    assert len(os.listdir("/proc/self/fd")) == before


# ---------------------------------------------------------------------------------------------- settle lines
# A deferred settle is acknowledged once its line is in the log; the flusher (or the process adopting a dead
# one's log) replays exactly what the line says: the bill (nano), the hold it replaces, the budgets, the event
# time (its period) and the owner. settle_line formats it directly, and must write byte for byte what
# json.dumps writes, or an id JSON escapes would be replayed wrong (or not at all: an unreadable line is skipped).
@pytest.mark.parametrize(
    "args",
    [
        ("r1", 5, None, ["tenant:a|rolling:24h", "global|calendar:day@UTC"], 17, "123-abcd", 3),
        ("r2", 1_250_000_000, 2_000_000_000, ["tenant:a|rolling:24h"], 1_764_000_000_000, "", None),
        ("r3", 0, 0, [], 1, "", None),
        ("r3b", 0, None, [], 1, "o", 0),
        # each kind of id JSON escapes, in each field, with and without a lease decrement / held / budgets
        ('quote"and\\backslash', 7, 9, ["tenant:a|rolling:1h"], 2, "", None),
        ('q"', 7, None, [], 2, "own", 5),
        ("r5", 7, 9, ["tenant:a|rolling:1h"], 2, 'own"er', None),
        ("r6", 7, 9, ["tenant:a\\b|rolling:1h"], 2, "", 4),
        ("back\\slash", 1, 2, ["tenant:a|rolling:1h", "global|rolling:1h"], 3, "", 6),
        ("r4", 7, 9, ["tenant:caf\u00e9|rolling:1h"], 2, "", 4),
        ("r7\u00e9", 7, None, [], 2, "", None),
        ("r8", 7, 9, [], 2, "\u00e9", None),
        ("tab\there", 7, 9, ["tenant:a|rolling:1h"], 2, "", None),
        ("r9", 7, 9, ["tenant:nl\n|rolling:1h"], 2, "", 1),
        ("r10", 7, 9, ["tenant:a|rolling:1h"], 2, "del\x7f", None),
    ],
)
def test_a_settle_line_is_what_json_dumps_writes(args: tuple) -> None:
    rid, nano, held, bids, at, owner, ldec = args
    entry = {"rid": rid, "mode": "S", "nano": nano, "held": held, "bids": bids, "at": at, "owner": owner}
    if ldec is not None:
        entry["ldec"] = ldec
    line = wal.settle_line(*args)
    assert line == (json.dumps(entry, separators=(",", ":")) + "\n").encode()
    assert json.loads(line) == entry


def test_a_settle_line_without_a_lease_decrement_has_no_ldec_field(tmp_path: Path) -> None:
    line = wal.settle_line("r1", 5, 7, ["tenant:a|rolling:1h"], 9, "o")
    assert line == b'{"rid":"r1","mode":"S","nano":5,"held":7,"bids":["tenant:a|rolling:1h"],"at":9,"owner":"o"}\n'
    escaped = wal.settle_line('r"1', 5, 7, ["tenant:a|rolling:1h"], 9, "o")
    assert escaped == b'{"rid":"r\\"1","mode":"S","nano":5,"held":7,"bids":["tenant:a|rolling:1h"],"at":9,"owner":"o"}\n'


def test_settle_lines_read_back_as_their_entries(tmp_path: Path) -> None:
    log = SettleLog(tmp_path)
    log.append_line(wal.settle_line('a"b\\c', 3, 5, ["tenant:x|rolling:1h"], 9, ""))
    log.append_line(wal.settle_line("d", 4, None, ["tenant:x|rolling:1h", "global|calendar:day@UTC"], 10, log.owner, 4))
    assert log.count == 2
    assert log.current is not None
    assert SettleLog.entries(log.current) == [
        {"rid": 'a"b\\c', "mode": "S", "nano": 3, "held": 5, "bids": ["tenant:x|rolling:1h"], "at": 9, "owner": ""},
        {"rid": "d", "mode": "S", "nano": 4, "held": None, "bids": ["tenant:x|rolling:1h", "global|calendar:day@UTC"],
         "at": 10, "owner": log.owner, "ldec": 4},
    ]
    log.close(remove=True)
