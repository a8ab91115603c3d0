"""The settle log's file thread (router/ledger/file_thread.py): calls run off the event loop, one at a time,
their results and exceptions come back to the caller, and the thread exits when idle and starts again."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from router.ledger.file_thread import FileThread


async def test_calls_run_on_another_thread_and_answer_the_caller(tmp_path):
    files = FileThread()
    loop_thread = threading.get_ident()
    assert await files.run(threading.get_ident) != loop_thread
    path = tmp_path / "segment"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY)
    os.write(fd, b"line\n")
    assert await files.run(lambda: os.fsync(fd)) is None
    os.close(fd)
    with pytest.raises(OSError):
        await files.run(lambda: os.fsync(fd))  # closed: the error comes back here
    assert await files.run(lambda: path.read_bytes()) == b"line\n"


async def test_calls_run_in_order_and_the_thread_starts_again_after_idling():
    files = FileThread(idle_s=0.01)
    seen: list[int] = []
    await asyncio.gather(*(files.run(lambda i=i: seen.append(i)) for i in range(50)))
    assert seen == list(range(50))
    for _ in range(200):  # idle: the thread exits
        if not files._running:
            break
        await asyncio.sleep(0.01)
    assert not files._running
    assert await files.run(lambda: 42) == 42  # and comes back on the next call
