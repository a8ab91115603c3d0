"""The settle log: a per-process, append-only write-ahead log of deferred settlements.

A store with deferred settlement acknowledges a settle once its entry is written here; a background
flusher applies the entries to Redis in batches and deletes them only once Redis confirmed them (the
primary applied them and every connected replica acknowledged them). The log is a directory::

    DIR/OWNER.lock          held with an exclusive ``flock`` for the life of the process (OWNER = pid-random)
    DIR/OWNER.SEQ.jsonl     segments of JSON-lines entries; the newest one is appended to

Durability: every entry is one ``write`` to the file (it survives a crash of the process, ``kill -9``
included, as soon as ``settle`` returned); segments are ``fsync``ed before their entries are sent to Redis
(so a crash of the machine loses at most the entries of one flush interval), or on every entry with
``fsync="always"``. Recovery: a process that finds a lock file nobody holds (its owner died) adopts the
owner's segments and applies them (settles are idempotent per reservation id, so applying an entry twice
never counts it twice).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

FSYNC_MODES = ("batch", "always")


def settle_line(rid: str, nano: int, held: int | None, bids: list[str], at: int, owner: str, ldec: int | None = None) -> bytes:
    """The settle entry ``{"rid", "mode": "S", "nano", "held", "bids", "at", "owner"[, "ldec"]}`` (the deferred
    store's shape) as one compact JSON line, byte for byte what :meth:`SettleLog.append` writes for it, but
    formatted directly (a fraction of ``json.dumps``'s cost). A string JSON would escape (a quote, a
    backslash, a non-printable or non-ASCII character) goes through ``json.dumps``."""
    text = rid + owner + "".join(bids)
    if '"' in text or "\\" in text or not (text.isascii() and text.isprintable()):
        entry: dict[str, Any] = {"rid": rid, "mode": "S", "nano": nano, "held": held, "bids": bids, "at": at, "owner": owner}
        if ldec is not None:
            entry["ldec"] = ldec
        return (json.dumps(entry, separators=(",", ":")) + "\n").encode()
    quoted = '["' + '","'.join(bids) + '"]' if bids else "[]"
    tail = "}\n" if ldec is None else f',"ldec":{ldec}}}\n'
    return f'{{"rid":"{rid}","mode":"S","nano":{nano},"held":{"null" if held is None else held},"bids":{quoted},"at":{at},"owner":"{owner}"{tail}'.encode()


def _read_entries(path: Path) -> list[dict[str, Any]]:
    entries = []
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return entries
    for line in data.decode(errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:  # a torn last line: the write never completed, settle never returned
            continue
    return entries


class SettleLog:
    """One process's settle log in ``directory`` (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str], fsync: str = "batch") -> None:
        if fsync not in FSYNC_MODES:
            raise ValueError(f"settle log fsync must be one of {FSYNC_MODES}, not {fsync!r}")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock_fd = os.open(self.dir / f"{self.owner}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self._seq = 0
        self._fd: int | None = None
        self._current: Path | None = None
        self._dirty = False
        self._opened = 0.0
        self.count = 0  # entries in the current segment

    # ------------------------------------------------------------------ appending
    def _open_segment(self) -> None:
        self._seq += 1
        self._current = self.dir / f"{self.owner}.{self._seq:09d}.jsonl"
        self._fd = os.open(self._current, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        self._opened = time.monotonic()
        self.count = 0

    def append(self, entry: dict[str, Any]) -> None:
        """Write one entry (one ``write`` call; ``fsync`` too with ``fsync="always"``)."""
        self.append_line((json.dumps(entry, separators=(",", ":")) + "\n").encode())

    def append_line(self, line: bytes) -> None:
        """Write one entry already encoded as one JSON line ending in a newline (e.g. by :func:`settle_line`):
        one ``write`` call; ``fsync`` too with ``fsync="always"``."""
        if self._fd is None:
            self._open_segment()
        assert self._fd is not None
        os.write(self._fd, line)
        self.count += 1
        if self.fsync == "always":
            os.fsync(self._fd)
        else:
            self._dirty = True

    @property
    def current(self) -> Path | None:
        """The segment appended to now (None before the first append after a rotation)."""
        return self._current

    def rotation_due(self, max_age_s: float, max_entries: int = 100_000) -> bool:
        """Whether the current segment should be closed (older than ``max_age_s`` or large): segments are
        rotated about once a second, not per batch, so the file system sees few creates and deletes."""
        return self._fd is not None and (time.monotonic() - self._opened >= max_age_s or self.count >= max_entries)

    def dirty_fd(self) -> int | None:
        """The current segment's descriptor if it has unsynced writes (marked synced: the caller fsyncs it)."""
        if self._fd is None or not self._dirty:
            return None
        self._dirty = False
        return self._fd

    def rotate(self) -> tuple[Path, int, bool] | None:
        """Start a new segment for the next append; returns the old one's path, its open file descriptor and
        whether it needs an fsync. The caller hands them to :meth:`finish` (which may block: fsync)."""
        if self._fd is None:
            return None
        rotated = (self._current, self._fd, self._dirty)
        self._fd, self._current, self._dirty, self.count = None, None, False, 0
        assert rotated[0] is not None
        return rotated  # type: ignore[return-value]

    @staticmethod
    def finish(fd: int, dirty: bool) -> None:
        """fsync (if needed) and close a rotated segment."""
        try:
            if dirty:
                os.fsync(fd)
        finally:
            os.close(fd)

    def seal(self) -> Path | None:
        """Close the current segment (fsynced) and return it; the next append starts a new one."""
        rotated = self.rotate()
        if rotated is None:
            return None
        self.finish(rotated[1], rotated[2])
        return rotated[0]

    @staticmethod
    def entries(segment: Path) -> list[dict[str, Any]]:
        """The entries of a segment (a torn last line is skipped: its settle never returned)."""
        return _read_entries(segment)

    @staticmethod
    def drop(segment: Path) -> None:
        """Delete a segment whose entries Redis confirmed."""
        try:
            segment.unlink()
        except FileNotFoundError:
            pass

    def own_segments(self) -> list[Path]:
        """Sealed segments of this process still on disk (not confirmed yet), oldest first."""
        return sorted(p for p in self.dir.glob(f"{self.owner}.*.jsonl") if p != self._current)

    # ------------------------------------------------------------------ recovery
    def orphans(self) -> list[tuple[str, list[Path]]]:
        """Logs of dead processes (their lock file is not held): ``[(owner, segments)]``. The caller must
        :meth:`adopt` each (apply it, then :meth:`bury` it)."""
        found = []
        for lock in sorted(self.dir.glob("*.lock")):
            owner = lock.name[: -len(".lock")]
            if owner == self.owner:
                continue
            segments = sorted(self.dir.glob(f"{owner}.*.jsonl"))
            found.append((owner, segments))
        return found

    def adopt(self, owner: str) -> int | None:
        """Take the lock of a dead owner's log; None if its owner is alive (or another process adopted it)."""
        try:
            fd = os.open(self.dir / f"{owner}.lock", os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        if not (self.dir / f"{owner}.lock").exists():  # buried by another adopter meanwhile
            os.close(fd)
            return None
        return fd

    def bury(self, owner: str, fd: int) -> None:
        """Remove an adopted log once all its entries were confirmed."""
        for segment in self.dir.glob(f"{owner}.*.jsonl"):
            self.drop(segment)
        try:
            (self.dir / f"{owner}.lock").unlink()
        except FileNotFoundError:
            pass
        os.close(fd)

    def backlog(self) -> int:
        """Entries in this directory's segments (every process's): not confirmed yet, or confirmed in a
        segment still open (a segment is deleted once closed and fully confirmed; replaying a confirmed
        entry counts nothing twice)."""
        return sum(len(_read_entries(p)) for p in self.dir.glob("*.jsonl"))

    def close(self, remove: bool) -> None:
        """Close the log; with ``remove`` (everything confirmed) delete its files."""
        self.seal()
        if remove:
            for segment in self.dir.glob(f"{self.owner}.*.jsonl"):
                self.drop(segment)
            try:
                (self.dir / f"{self.owner}.lock").unlink()
            except FileNotFoundError:
                pass
        os.close(self._lock_fd)
