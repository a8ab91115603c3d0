"""A wall-clock limit per test while mutmut runs a mutant (``MUTANT_UNDER_TEST`` names one).

mutmut's own limit is CPU time: a mutant that makes a test wait forever (a flush that is never woken, a
give-back loop that never ends on an idle event loop) uses no CPU, so it held a worker for minutes before
it was classified. Under a mutant, a test that runs longer than ``ROUTER_MUTANT_TEST_TIMEOUT_S`` (default
30 s, ~20x the slowest fast-profile test on a loaded 2-core VM) fails with ``TimeoutError``, so the mutant
counts as killed at once. Outside a mutant run (CI, a developer's run) this plugin does nothing.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest


def _limit_s() -> float:
    name = os.environ.get("MUTANT_UNDER_TEST", "")
    if "__mutmut_" not in name or threading.current_thread() is not threading.main_thread():
        return 0.0
    return float(os.environ.get("ROUTER_MUTANT_TEST_TIMEOUT_S", "30"))


@pytest.fixture(autouse=True)
def mutation_watchdog() -> Iterator[None]:
    limit = _limit_s()
    if limit <= 0:
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"mutation watchdog: the test ran over {limit:g} s under {os.environ['MUTANT_UNDER_TEST']}")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
