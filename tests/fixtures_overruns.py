"""Autouse check: no test's bill passes its reservation (``router_reservation_overruns_total`` stays 0).

A bill above its reservation means a budget could overshoot its cap. The router reserves the whole prompt
(the caller's ``prompt_tokens`` or the estimate), ``max_tokens`` of output and grounding billed in full,
so the only tests allowed to overrun are marked ``@pytest.mark.reservation_overrun`` and say why (a
deliberately wrong ``prompt_tokens``, more searches than ``grounding.expected_queries``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _no_reservation_overruns(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    from router._client import Router

    overruns: list[str] = []
    original = Router._check_bound

    def checked(self: Any, record: Any, cost: Any, upper: Any, *args: Any, **kwargs: Any) -> None:
        original(self, record, cost, upper, *args, **kwargs)
        if cost > upper:
            overruns.append(record.warnings[-1] if record.warnings else f"billed ${cost} > reserved ${upper}")

    monkeypatch.setattr(Router, "_check_bound", checked)
    yield overruns
    if overruns and request.node.get_closest_marker("reservation_overrun") is None:
        pytest.fail("a bill passed its reservation (router_reservation_overruns_total > 0):\n" + "\n".join(overruns), pytrace=False)
