"""Shared pytest configuration: each area keeps its fixtures in its own plugin module."""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

pytest_plugins = [
    "tests.fixtures_redis",
    "tests.fixtures_overruns",
    "router.testing.pytest_plugin",
    "tests.mutation_watchdog",
]
