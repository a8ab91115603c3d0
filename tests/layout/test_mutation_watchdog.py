"""The mutation watchdog (tests/mutation_watchdog.py) fails a test that hangs under a mutant, and only then."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HANGING = """
import asyncio

async def test_waits_for_a_flush_that_never_comes():
    await asyncio.Event().wait()   # what a mutant that never wakes the flusher does
"""


def _run(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_hang.py").write_text(HANGING)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.mutation_watchdog",
         "-o", "asyncio_mode=auto", "--rootdir", str(tmp_path), str(tmp_path / "test_hang.py")],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env}, capture_output=True, text=True, timeout=60,
    )


@pytest.mark.slow
def test_a_test_hanging_under_a_mutant_fails_after_the_limit(tmp_path: Path) -> None:
    done = _run(tmp_path, {"MUTANT_UNDER_TEST": "router.cost.x_bill__mutmut_7", "ROUTER_MUTANT_TEST_TIMEOUT_S": "1"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "mutation watchdog: the test ran over 1 s under router.cost.x_bill__mutmut_7" in done.stdout


@pytest.mark.slow
def test_outside_a_mutant_run_the_watchdog_does_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MUTANT_UNDER_TEST"}
    (tmp_path / "test_hang.py").write_text(HANGING)
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.mutation_watchdog",
             "-o", "asyncio_mode=auto", "--rootdir", str(tmp_path), str(tmp_path / "test_hang.py")],
            cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT), "ROUTER_MUTANT_TEST_TIMEOUT_S": "1"},
            capture_output=True, text=True, timeout=4,
        )
