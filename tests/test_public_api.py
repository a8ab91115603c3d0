"""The public API: every name in ``router.__all__`` (sorted) resolves, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import router


def test_all_is_sorted_and_every_name_resolves():
    assert router.__all__ == sorted(router.__all__)
    for name in router.__all__:
        assert getattr(router, name) is not None, name


def test_import_router_does_not_import_litellm_or_redis():
    code = "import sys, router; router.Router; router.compute_cost; print(sorted(m for m in ('litellm', 'redis') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
