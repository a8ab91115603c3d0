"""The README's two set-up commands are the ones CI and users run: keep them in sync."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/router demo"
TESTS = "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && .venv/bin/python -m pytest"


def _bash_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_readme_has_the_demo_and_test_commands_first():
    blocks = _bash_blocks((REPO / "README.md").read_text())
    assert blocks[:2] == [DEMO, TESTS]


def test_ci_runs_exactly_the_readme_test_command():
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert lines[-1] == TESTS
    assert any(line.startswith("apt-get install") for line in lines)
    # It installs what the suite needs from the system: a real redis-server and the browser of the report test.
    for package in ("redis-server", "chromium"):
        assert any(f"missing+=({package})" in line for line in lines), package
