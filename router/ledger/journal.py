"""The ``fail_open`` journal: spend events written while Redis is unreachable, replayed when it is back.

An append-only JSON-lines file. Each event is appended with one ``write`` and ``fsync``ed, under an
exclusive ``flock`` on ``PATH.lock`` (so several processes may share a journal). Replay hands the file
over to this process's own ``PATH.replaying.<pid>-<id>`` (new events go to a fresh ``PATH``; while Redis
stays down, later hand-overs append to the same own file), reads every ``.replaying`` file (its own and any
left by a process that died mid-replay), applies every event (each is idempotent: settles by reservation
id, consumes by request id, ramp tokens by event id), and deletes a file only when all of it was applied
and it did not grow since it was read: a replay cut short is simply done again later.
Events the ledger cannot attribute (a settle of a reservation it never saw, after its record expired)
go to ``PATH.unattributed`` for an operator, never silently away.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _append_bytes(path: Path, data: bytes) -> None:
    """Append ``data`` durably (one write, fsync); the caller holds the journal lock."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """An append-only JSON-lines event file with atomic hand-over for replay."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.unattributed = self.path.with_name(self.path.name + ".unattributed")
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._taken: list[tuple[Path, int]] = []
        self._own: Path | None = None
        #: A cheap hint that there may be something to replay (checked on every operation).
        self.pending = self._has_events()

    def _replaying_files(self) -> list[Path]:
        return sorted(self.path.parent.glob(f"{self.path.name}.replaying*"))

    def _has_events(self) -> bool:
        return self.path.exists() or bool(self._replaying_files())

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _write(self, path: Path, event: dict[str, Any]) -> None:
        line = (json.dumps(event, separators=(",", ":"), sort_keys=True) + "\n").encode()
        with self._locked():
            _append_bytes(path, line)

    def append(self, event: dict[str, Any]) -> None:
        """Append one event durably."""
        self._write(self.path, event)
        self.pending = True

    def set_aside(self, event: dict[str, Any]) -> None:
        """Keep an event that cannot be replayed (for an operator to look at)."""
        self._write(self.unattributed, event)

    def take(self) -> list[dict[str, Any]]:
        """Hand the journal over for replay and return the events of every ``.replaying`` file.

        Replay is idempotent, so two processes reading the same orphan file is safe; each deletes only
        what it took and only if the file did not grow since (:meth:`done`), so no event is deleted unread."""
        with self._locked():
            if self.path.exists():
                if self._own is not None and self._own.exists():
                    # A previous replay of ours failed (Redis still down): move the new events into the same
                    # file instead of starting one more (a crash in between only duplicates idempotent events).
                    _append_bytes(self._own, self.path.read_bytes())
                    self.path.unlink()
                else:
                    self._own = self.path.with_name(f"{self.path.name}.replaying.{os.getpid()}-{uuid.uuid4().hex[:8]}")
                    os.replace(self.path, self._own)
            files = self._replaying_files()
            contents = [p.read_bytes() for p in files]
        # Remember each file's size as read: done() deletes a file only if nothing was added since.
        self._taken = [(p, len(data)) for p, data in zip(files, contents)]
        if not files:
            self.pending = False
        events = []
        for data in contents:
            for line in data.decode().splitlines():
                line = line.strip()
                if not line:
                    continue
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:  # a torn last line from a crash mid-write
                    self.set_aside({"op": "corrupt", "line": line})
        return events

    def backlog(self) -> int:
        """How many events wait for replay (journaled while Redis was unreachable)."""
        count = 0
        for path in (self.path, *self._replaying_files()):
            try:
                with open(path, "rb") as handle:
                    count += sum(1 for line in handle if line.strip())
            except FileNotFoundError:
                continue
        return count

    def done(self) -> None:
        """All taken events were applied: delete the files this process took (and only those)."""
        with self._locked():
            for path, size in self._taken:
                try:
                    if path.stat().st_size == size:  # events appended after we read it stay for the next replay
                        path.unlink()
                except FileNotFoundError:
                    continue
            self._taken = []
            self.pending = self._has_events()
