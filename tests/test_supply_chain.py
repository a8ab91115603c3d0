"""The litellm pin excludes the compromised releases, and the deploy lock is hash-locked and consistent."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
COMPROMISED = ["1.82.7", "1.82.8", *(f"1.107.{i}" for i in range(0, 30))]


def _litellm_requirement() -> Requirement:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (req,) = [Requirement(d) for d in deps if Requirement(d).name == "litellm"]
    return req


def test_the_litellm_range_excludes_every_compromised_release():
    spec = _litellm_requirement().specifier
    assert not [v for v in COMPROMISED if Version(v) in spec]
    assert spec.contains("1.110.2")


def test_the_lock_pins_a_safe_litellm_and_hashes_everything():
    text = (REPO / "requirements.lock").read_text()
    pinned = re.search(r"^litellm==([\w.]+)", text, flags=re.M)
    assert pinned and pinned.group(1) not in COMPROMISED
    assert _litellm_requirement().specifier.contains(pinned.group(1))
    blocks = re.findall(r"^([A-Za-z0-9_.\-]+)==\S+ \\\n((?:\s+--hash=sha256:[0-9a-f]{64}.*\n)+)", text, flags=re.M)
    pins = re.findall(r"^[A-Za-z0-9_.\-]+==", text, flags=re.M)
    assert len(blocks) == len(pins) > 50


def test_the_lock_covers_every_runtime_dependency():
    text = (REPO / "requirements.lock").read_text().lower()
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name = Requirement(dep).name.lower().replace("_", "-")
        assert re.search(rf"^{re.escape(name)}==", text, flags=re.M), f"{name} missing from requirements.lock"
