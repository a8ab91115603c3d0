"""Fixtures for the policy engine tests: the bundled catalog and small policy builders."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from router.catalog import default_catalog, load_catalog
from router.policy import RequestFeatures, compile_policy, load_policy

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
#: A fixed pricing date (after the Gemini 3 grounding billing start of 2026-01-05).
DAY = dt.date(2026, 11, 2)


PRIORITY_OVERLAY = ROOT / "tests" / "data" / "priority_overlay.yaml"


@pytest.fixture(scope="session")
def catalog():
    return default_catalog()


def priced_catalog():
    """The bundled catalog plus test-only Priority PayGo rates (the seeds give none)."""
    return load_catalog(overlays=[PRIORITY_OVERLAY])


@pytest.fixture(scope="session")
def priority_catalog():
    return priced_catalog()


def compile_text(text: str, catalog=None, filename: str = "p.yaml"):
    catalog = catalog or default_catalog()
    return compile_policy(load_policy(textwrap.dedent(text), catalog, filename=filename), catalog)


def feats(**kw) -> RequestFeatures:
    kw.setdefault("at", DAY)
    kw.setdefault("prompt_tokens", 1000)
    kw.setdefault("max_tokens", 500)
    return RequestFeatures(**kw)
