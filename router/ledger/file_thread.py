"""One thread for the settle log's blocking file calls (``fsync``, closing and deleting segments).

``asyncio.to_thread`` costs the event loop about 130 Python calls per call (context copy, executor
submit, future chaining); the deferred flusher makes one such call per flush (the ``fsync`` of the batch
before it is sent). :class:`FileThread` hands the call to one worker thread through a queue and is woken
back through one ``call_soon_threadsafe``: about a quarter of the work. The thread starts on first use
and exits after ``idle_s`` without work (started again when needed), so an unclosed store leaks nothing.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
_Item = tuple[asyncio.AbstractEventLoop, "asyncio.Future[object]", Callable[[], object]]


def _answer(future: "asyncio.Future[object]", result: object, error: BaseException | None) -> None:
    if future.done():  # the caller gave up (cancelled): nothing to answer
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class FileThread:
    """Runs blocking calls one at a time on a worker thread for ``await``-ing coroutines."""

    def __init__(self, idle_s: float = 5.0) -> None:
        self.idle_s = idle_s
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = False

    async def run(self, call: Callable[[], T]) -> T:
        """``call()`` on the worker thread; its result (or exception) here."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        with self._lock:
            self._queue.put((loop, future, call))
            if not self._running:
                self._running = True
                threading.Thread(target=self._work, name="router-settle-log", daemon=True).start()
        return await future  # type: ignore[return-value]

    def _work(self) -> None:
        while True:
            try:
                loop, future, call = self._queue.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:  # exit only with nothing queued (run() starts a new thread after this)
                    if self._queue.empty():
                        self._running = False
                        return
                continue
            result: object = None
            error: BaseException | None = None
            try:
                result = call()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                error = exc
            try:
                loop.call_soon_threadsafe(_answer, future, result, error)
            except RuntimeError:  # the caller's loop is closed: nobody is waiting
                pass
