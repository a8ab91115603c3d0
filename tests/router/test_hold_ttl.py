"""Issue 11 item 9: a hold's TTL is derived from the call's timeout (+ a 30 s margin) instead of a fixed
600 s, so a killed worker blocks budget capacity for about as long as its call could have lasted."""

from __future__ import annotations

from decimal import Decimal

import pytest

from router import Router
from router.ledger.memory import MemoryStore

pytestmark = pytest.mark.litellm
HELLO = [{"role": "user", "content": "hello"}]
POLICY = """\
version: 1
candidates: [{model: gemini-2.5-flash-lite}]
profiles: {p: {objective: cheapest}}
default_profile: p
budgets:
  - {name: month, scope: global, window: calendar:month@UTC, limit_usd: "10"}
"""


class RecordingStore(MemoryStore):
    """A memory ledger remembering the TTL of every hold."""

    def __init__(self) -> None:
        super().__init__()
        self.ttls: list[float] = []

    async def reserve(self, reservation_id, budgets, amount, ttl_s):  # type: ignore[override]
        self.ttls.append(ttl_s)
        return await super().reserve(reservation_id, budgets, amount, ttl_s)


async def test_default_hold_ttl_is_the_default_timeout_plus_30_s(stub_router):
    store = RecordingStore()
    r = stub_router(POLICY, store=store)
    await r.acomplete(HELLO, max_tokens=20)
    assert store.ttls == [150.0]  # 120 s default request timeout + 30 s


async def test_hold_ttl_follows_the_router_and_the_call_timeout(stub_router):
    store = RecordingStore()
    r = stub_router(POLICY, store=store, request_timeout_s=20)
    await r.acomplete(HELLO, max_tokens=20)
    await r.acomplete(HELLO, max_tokens=20, timeout=5)
    assert store.ttls == [50.0, 35.0]


async def test_an_explicit_reservation_ttl_wins(stub_router):
    store = RecordingStore()
    r = stub_router(POLICY, store=store, reservation_ttl_s=600, request_timeout_s=20)
    await r.acomplete(HELLO, max_tokens=20, timeout=5)
    assert store.ttls == [600]


def test_the_default_timeout_reaches_the_model_call():
    from router._transport import MockTransport

    mock = MockTransport(lightweight=True)
    r = Router(POLICY, transport=mock)
    try:
        r.complete(HELLO, max_tokens=20)
        r.complete(HELLO, max_tokens=20, timeout=7)
    finally:
        r.close()
    assert [c.timeout_s for c in mock.calls] == [120.0, 7.0]
    assert r.hold_ttl_s() == 150.0


@pytest.mark.parametrize("bad", [0, -1, True, "60", 8 * 86400])
def test_bad_timeouts_are_refused(bad):
    with pytest.raises(ValueError, match="request_timeout_s"):
        Router(POLICY, request_timeout_s=bad)
    with pytest.raises(ValueError, match="reservation_ttl_s"):
        Router(POLICY, reservation_ttl_s=bad)
