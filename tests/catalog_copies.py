"""Copies of the bundled price catalog with a few lines edited, for tests that need a catalog the seeds do not
give (a custom catalog a user may point ``ROUTER_CATALOG`` at): edited copies, never edits of the bundled data."""

from __future__ import annotations

import shutil
from pathlib import Path

from router.catalog import default_catalog_dir

#: Test values, not rates (the seeds give burndown rates only for Gemini 2.0 Flash): Gemini 3 Flash burning
#: down like 2.0 Flash, 3,360 adjusted tokens a second per GSU, output tokens counting 4.
GEMINI_3_FLASH_BURNDOWN = (
    "  - model: gemini-3-flash-preview\n    tokens_per_second_per_gsu: 3360\n    min_gsu_increment: 1\n"
    "    input_text: 1\n    input_audio: 7\n    output_text: 4\n"
    '    provenance: {source: "https://example.com/test-only-burndown", section: "test data"}\n'
)


def catalog_copy(tmp_path: Path, *edits: tuple[str, str, str]) -> Path:
    """A copy of the bundled catalog in ``tmp_path / "catalog"``; each ``(file, anchor, replacement)`` replaces
    the one occurrence of ``anchor`` in that file (checked: an anchor the data no longer has fails the test)."""
    root = tmp_path / "catalog"
    shutil.copytree(default_catalog_dir(), root)
    for name, anchor, replacement in edits:
        path = root / name
        text = path.read_text()
        assert text.count(anchor) == 1, f"{name}: {anchor!r} found {text.count(anchor)} times"
        path.write_text(text.replace(anchor, replacement))
    return root


def catalog_with_gemini_3_flash_burndown(tmp_path: Path) -> Path:
    """A catalog copy with :data:`GEMINI_3_FLASH_BURNDOWN` added (two Provisioned Throughput models)."""
    return catalog_copy(tmp_path, ("provisioned_throughput.yaml", "burndown:\n", "burndown:\n" + GEMINI_3_FLASH_BURNDOWN))
