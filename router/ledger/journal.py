"""The ``fail_open`` journal: spend events written while Redis is unreachable, replayed when it is back.

An append-only JSON-lines file. Each event is appended with one ``write`` and ``fsync``ed, under an
exclusive ``flock`` on ``PATH.lock`` (so several processes may share a journal). Replay hands the file
over to this process's own ``PATH.replaying.<pid>-<id>`` (new events go to a fresh ``PATH``; while Redis
stays down, later hand-overs append to the same own file), reads every ``.replaying`` file (its own and any
left by a process that died mid-replay), applies every event (each is idempotent: settles by reservation
id, consumes by request id, ramp tokens by event id), and deletes a file only when all of it was applied
and it did not grow since it was read: a replay cut short is simply done again later.
Events the ledger cannot attribute (a settle of a reservation it never saw, after its record expired)
go to ``PATH.unattributed`` for an operator, never silently away. An event that cannot be replayed as
written (an invalid budget id, a negative amount: the file is local and may be edited or damaged) goes to
``PATH.quarantine`` with the file and line it was read from (:meth:`Journal.quarantine`), so it neither
reaches Redis nor stops the events after it.

A journal belongs to one ledger. The default path names it (:func:`default_journal_path`: a digest of the
Redis URL's host, port and db and the key prefix, :func:`ledger_identity`), and every event records the
ledger identity and, once the store has reached Redis, the ledger's id (a random id the ledger stores
under its prefix on first contact). A replay applies only the events of its own ledger (``take(belongs)``)
and leaves every other event in place: a replay never deletes an event it did not apply.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Belongs = Callable[[dict[str, Any]], bool]


def ledger_identity(url: str, prefix: str) -> str:
    """Which ledger a store URL and prefix name, without credentials or client options:
    ``redis://HOST:PORT/DB#PREFIX`` (``unix://PATH/DB``, cluster seeds sorted, ``fakeredis://NAME``)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    query = dict(parse_qsl(parts.query))
    db = query.get("db") or parts.path.strip("/") or "0"
    if scheme == "unix":
        return f"unix://{parts.path}/{query.get('db', '0')}#{prefix}"
    if scheme == "fakeredis":
        return f"fakeredis://{parts.netloc or parts.path.strip('/') or 'default'}#{prefix}"
    hosts = parts.netloc.rpartition("@")[2]
    nodes = []
    for node in hosts.split(","):
        host, colon, port = node.rpartition(":")
        if not colon or not port.isdigit():
            host, port = node, "6379"
        nodes.append(f"{(host or 'localhost').lower()}:{port}")
    if "cluster" in scheme:
        return f"{scheme}://{','.join(sorted(nodes))}#{prefix}"
    return f"{scheme}://{nodes[0]}/{db}#{prefix}"


def default_journal_path(url: str, prefix: str) -> str:
    """``$TMPDIR/router-ledger-PREFIX-DIGEST.jsonl``: one journal per ledger (DIGEST: 12 hex digits of the
    SHA-256 of :func:`ledger_identity`), so two services on different Redis servers never share one."""
    digest = hashlib.sha256(ledger_identity(url, prefix).encode("utf-8")).hexdigest()[:12]
    return f"{tempfile.gettempdir()}/router-ledger-{prefix}-{digest}.jsonl"


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
        self.quarantine_path = self.path.with_name(self.path.name + ".quarantine")
        #: Where each event the last :meth:`take` returned was read from: (file, 1-based line).
        self.origins: list[tuple[Path, int]] = []
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._taken: list[tuple[Path, int, bytes]] = []
        self._own: Path | None = None
        #: Replaying files that hold only other ledgers' events, with their size: not pending for us.
        self._foreign: dict[Path, int] = {}
        #: A cheap hint that there may be something to replay (checked on every operation).
        self.pending = self._has_events()

    def _replaying_files(self) -> list[Path]:
        return sorted(self.path.parent.glob(f"{self.path.name}.replaying*"))

    def _has_events(self) -> bool:
        if self.path.exists():
            return True
        for path in self._replaying_files():
            try:
                if self._foreign.get(path) != path.stat().st_size:
                    return True
            except FileNotFoundError:
                continue
        return False

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

    def quarantine(self, event: Any, origin: tuple[Path, int], reason: str) -> None:
        """Keep an event that cannot be replayed as written, with the file and line it was read from and why."""
        self._write(self.quarantine_path, {"file": str(origin[0]), "line": origin[1], "reason": reason, "event": event})

    def take(self, belongs: Belongs | None = None) -> list[dict[str, Any]]:
        """Hand the journal over for replay and return the events of every ``.replaying`` file for which
        ``belongs(event)`` is true (every event without ``belongs``); the others stay in their file.
        :attr:`origins` then says where each returned event was read from.

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
        if not files:
            self.pending = False
        events = []
        self._taken = []
        self.origins = []
        for path, data in zip(files, contents):
            kept: list[bytes] = []  # lines of other ledgers: never applied here, so never deleted here
            for number, raw in enumerate(data.splitlines(keepends=True), 1):
                line = raw.strip()
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:  # a torn last line from a crash mid-write
                    self.set_aside({"op": "corrupt", "line": line.decode(errors="replace")})
                    continue
                if belongs is None or (isinstance(event, dict) and belongs(event)):
                    events.append(event)
                    self.origins.append((path, number))
                else:
                    kept.append(line + b"\n")
            # Remember each file's size as read: done() deletes a file only if nothing was added since.
            self._taken.append((path, len(data), b"".join(kept)))
        return events

    def backlog(self, belongs: Belongs | None = None) -> int:
        """How many events wait for replay (journaled while Redis was unreachable); with ``belongs``, only
        the events it accepts (this ledger's)."""
        count = 0
        for path in (self.path, *self._replaying_files()):
            try:
                with open(path, "rb") as handle:
                    for line in handle:
                        if not line.strip():
                            continue
                        if belongs is not None:
                            try:
                                event = json.loads(line)
                            except json.JSONDecodeError:
                                continue
                            if not isinstance(event, dict) or not belongs(event):
                                continue
                        count += 1
            except FileNotFoundError:
                continue
        return count

    def done(self) -> None:
        """All taken events were applied: delete the files this process took (and only those), keeping the
        events of other ledgers in place."""
        with self._locked():
            for path, size, kept in self._taken:
                try:
                    if path.stat().st_size != size:  # events appended after we read it stay for the next replay
                        continue
                    if kept:
                        if len(kept) != size:
                            tmp = path.with_name(path.name + ".tmp")
                            tmp.write_bytes(kept)
                            os.replace(tmp, path)
                        self._foreign[path] = len(kept)
                    else:
                        path.unlink()
                        self._foreign.pop(path, None)
                except FileNotFoundError:
                    continue
            self._taken = []
            self.pending = self._has_events()
