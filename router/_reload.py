"""Hot reload of a policy file: validate first, swap atomically, keep versions, roll back.

A :class:`PolicyWatcher` checks the file's modification time at most every ``interval_s`` (on the
request path, so there is no thread to manage). A new version is loaded and compiled *before* it
replaces the serving one; an invalid file leaves the old policy serving, records the error and sets
the ``router_policy_reload_failing`` metric. Every version that ever served is kept in a history
directory next to the file (``.<name>.history/``) so ``router policy history`` can list them and
``router policy rollback`` can restore one (by writing it back; watchers pick it up like any edit).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from router.errors import PolicyError

log = logging.getLogger("router.policy")


def policy_version(text: str) -> str:
    """The version id of a policy text: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def history_dir(path: Path) -> Path:
    return path.parent / f".{path.name}.history"


@dataclass(frozen=True)
class PolicyVersion:
    version: str
    saved_at: dt.datetime
    path: Path


def record_version(path: Path, text: str) -> str:
    """Keep ``text`` in the history of ``path`` (idempotent); returns its version id."""
    version = policy_version(text)
    folder = history_dir(path)
    try:
        folder.mkdir(exist_ok=True)
        if not any(folder.glob(f"*-{version}.yaml")):
            stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
            target = folder / f"{stamp}-{version}.yaml"
            tmp = target.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, target)
    except OSError as exc:  # a read-only policy directory still serves; it only loses rollback
        log.warning("cannot keep policy history in %s: %s", folder, exc.strerror)
    return version


def list_versions(path: Path) -> list[PolicyVersion]:
    """Versions of ``path`` that served, oldest first."""
    folder = history_dir(path)
    out = []
    for item in sorted(folder.glob("*-*.yaml")) if folder.is_dir() else []:
        stamp, version = item.stem.split("-", 1)
        saved = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=dt.timezone.utc)
        out.append(PolicyVersion(version, saved, item))
    return out


def rollback(path: Path, version: str, validate: Callable[[str], Any]) -> str:
    """Write version ``version`` (a prefix is enough) back to ``path`` after validating it."""
    matches = [v for v in list_versions(path) if v.version.startswith(version)]
    if len(matches) != 1:
        known = ", ".join(v.version for v in list_versions(path)) or "none"
        raise PolicyError([(str(path), 1, 1, f"no single version matches {version!r} (known: {known})")])
    text = matches[0].path.read_text(encoding="utf-8")
    validate(text)
    tmp = path.with_name(f".{path.name}.rollback.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return matches[0].version


class PolicyWatcher:
    """Holds the serving compiled policy of one file and swaps it when the file changes validly."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        compile_text: Callable[[str, str], Any],
        *,
        interval_s: float = 0.5,
        on_reload: Callable[[bool, str | None, str | None], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self._compile_text = compile_text
        self.interval_s = interval_s
        self._on_reload = on_reload
        self._lock = threading.Lock()
        self._next_check = 0.0
        text = self.path.read_text(encoding="utf-8")
        self.current = compile_text(text, str(self.path))  # raises PolicyError: nothing to fall back to
        self.version = record_version(self.path, text)
        self._stamp = self._file_stamp()
        self.last_error: str | None = None

    def _file_stamp(self) -> tuple[int, int]:
        st = self.path.stat()
        return st.st_mtime_ns, st.st_size

    def get(self) -> Any:
        """The serving compiled policy, reloading first if the file changed (checked every ``interval_s``)."""
        now = time.monotonic()
        if now >= self._next_check:
            self.check(now)
        return self.current

    def check(self, now: float | None = None) -> bool:
        """Reload if the file changed; True if a new version is now serving."""
        with self._lock:
            self._next_check = (now if now is not None else time.monotonic()) + self.interval_s
            try:
                stamp = self._file_stamp()
            except OSError as exc:
                self._failed(f"{self.path}: cannot read policy: {exc.strerror}")
                return False
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            text = self.path.read_text(encoding="utf-8")
            version = policy_version(text)
            if version == self.version:
                # The serving text is back (e.g. a broken edit was undone): nothing to swap, but the
                # file on disk is valid again, so the alert must clear.
                if self.last_error is not None:
                    self.last_error = None
                    log.info("policy %s is back to the serving version %s", self.path, self.version)
                    if self._on_reload:
                        self._on_reload(True, self.version, None)
                return False
            try:
                compiled = self._compile_text(text, str(self.path))
            except PolicyError as exc:
                self._failed(str(exc))
                return False
            self.current = compiled  # a single reference swap: readers see the old or the new, never half
            self.version = record_version(self.path, text)
            self.last_error = None
            log.info("policy %s reloaded: version %s", self.path, self.version)
            if self._on_reload:
                self._on_reload(True, self.version, None)
            return True

    def _failed(self, message: str) -> None:
        self.last_error = message
        log.error("policy reload rejected, version %s keeps serving: %s", self.version, message)
        if self._on_reload:
            self._on_reload(False, None, message)
