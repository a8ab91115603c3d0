"""The request path where the full broad-profile mutmut run of ``router/_client.py`` found no test, in the call
and stream paths (``_complete``, ``_stream``, ``_settle_stream``, ``_settle_attempt``, ``_check_bound``, ...)
and the module-level helpers: which prompt-caching marks a request makes (they decide the rate its prompt is
reserved at), a transport stream without ``aclose`` closed by its consumer, the "billed > reserved" warning
of a stream.

Router + ``router.testing.MockTransport`` (lightweight) + the memory ledger. Prices by hand (seed 000):
Gemini 2.5 Flash-Lite $0.10 in / $0.40 out per 1M tokens; Claude Sonnet 4 $3 in / $15 out per 1M, prompt
cache writes $3.75 (5 minutes) / $6 (1 hour) per 1M.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from router import Router
from router.ledger.memory import MemoryStore
from router.testing import MockTransport
from tests.router.test_request_path_sample import HELLO, policy, spend_and_holds

D = Decimal


def _overrun_warnings(record) -> list[str]:
    return [w for w in record.warnings if w.startswith("billed $")]


# ---------------------------------------------------------------------- prompt-caching marks: the reserved rate
def _claude(store: MemoryStore) -> tuple[Router, MockTransport]:
    transport = MockTransport(lightweight=True)
    transport.script("claude-sonnet-4", usage={"input_tokens": 1_000, "cache_write_1h_tokens": 1_000, "output_tokens": 10})
    return Router(policy("claude-sonnet-4"), store=store, transport=transport, watch_policy=False), transport


ONE_HOUR = {"type": "ephemeral", "ttl": "1h"}
FIVE_MINUTES = {"type": "ephemeral"}


@pytest.mark.parametrize(
    "messages",
    [
        # a 1 h mark, then a 5 min one: the prompt may still be written to the 1 h cache
        [{"role": "user", "content": [{"type": "text", "text": "handbook", "cache_control": ONE_HOUR},
                                      {"type": "text", "text": "chapter 3", "cache_control": FIVE_MINUTES}]}],
        [{"role": "system", "content": [{"type": "text", "text": "handbook", "cache_control": ONE_HOUR}]},
         {"role": "user", "content": [{"type": "text", "text": "chapter 3", "cache_control": FIVE_MINUTES}]}],
        # the mark on the message itself (litellm moves it onto the content)
        [{"role": "user", "content": "handbook, chapter 3", "cache_control": ONE_HOUR}],
    ],
    ids=["1h-then-5m-parts", "1h-then-5m-messages", "message-level-mark"],
)
async def test_a_prompt_marked_for_one_hour_caching_anywhere_is_reserved_at_the_one_hour_write_rate(messages):
    """Claude bills 1 h cache writes at $6 per 1M (2x input): a request that marks any part for 1 h caching
    reserves its whole 1,000-token prompt at that rate, 1,000 x $6 + 100 x $15 per 1M = $0.0075, whatever
    marks come after it or whether the mark is on the message or its content. The provider writes the 1,000
    tokens to the 1 h cache: billed 1,000 x $6 + 10 x $15 per 1M = $0.00615, within the hold (a 5 min or
    input-rate reservation, $0.00525 / $0.0045, would be passed)."""
    store = MemoryStore()
    r, transport = _claude(store)
    record = (await r.acomplete(messages, max_tokens=100, prompt_tokens=1_000)).routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd) == (D("0.0075"), D("0.00615"))
    assert _overrun_warnings(record) == []
    assert await spend_and_holds(store) == (D("0.00615"), D("0.00615"))
    await r.aclose()


async def test_a_content_part_that_is_not_a_dict_is_passed_on_and_billed():
    """A content list may hold a part the router cannot read as a dict (a bare string): it is no cache mark and
    no capability, the request is sent as it is and billed 1,000 x $0.10 + 10 x $0.40 per 1M = $0.000104."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 10})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    messages = [{"role": "user", "content": ["hello", {"type": "text", "text": "world"}]}]
    record = (await r.acomplete(messages, max_tokens=100, prompt_tokens=1_000)).routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd) == (D("0.00014"), D("0.000104"))
    assert transport.calls[-1].messages == messages
    assert await spend_and_holds(store) == (D("0.000104"), D("0.000104"))
    await r.aclose()


# ---------------------------------------------------------------------- streams
@pytest.mark.reservation_overrun  # deliberate: the streamed usage has more output than max_tokens
async def test_a_stream_billed_past_its_reservation_is_served_booked_and_names_its_cause():
    """A stream produces 150 output tokens against max_tokens=100: billed 1,000 x $0.10 + 150 x $0.40 per 1M =
    $0.00016 above the $0.00014 reserved. The consumer gets every chunk (no error), the ledger books the full
    bill, and the record's warning names the cause."""
    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", usage={"input_tokens": 1_000, "output_tokens": 150})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, stream=True)
    assert [chunk async for chunk in stream]
    record = stream.routing
    assert (record.attempts[-1].reserved_usd, record.cost_usd) == (D("0.00014"), D("0.00016"))
    assert _overrun_warnings(record) == [
        "billed $0.00016 > reserved $0.00014: the model produced 150 output tokens (thinking included), more than "
        "max_tokens=100; the ledger recorded the full amount"
    ]
    assert await spend_and_holds(store) == (D("0.00016"), D("0.00016"))
    await r.aclose()


class _NoCloseStream:
    """A custom transport's stream without ``aclose`` (chunks and the usage of what was produced only)."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def __aiter__(self):
        return self

    async def __anext__(self):
        return await self._inner.__anext__()

    def final_usage(self):
        return self._inner.final_usage()


class _NoCloseTransport(MockTransport):
    def stream(self, spec, settings=None):
        return _NoCloseStream(super().stream(spec, settings))


async def test_a_stream_without_aclose_closed_by_its_consumer_settles_what_was_produced():
    """The consumer reads the first chunk ("abcd" of 12 characters in 3 chunks) and closes the stream: the
    router cannot close a transport stream that has no ``aclose``, and still settles what was produced, the
    1,000-token prompt and 4 characters = 1 output token: 1,000 x $0.10 + 1 x $0.40 per 1M = $0.0001004, with
    no hold left (the $0.00014 reservation is settled, not leaked until its TTL)."""
    store, transport = MemoryStore(), _NoCloseTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", text="abcdefghijkl", stream_chunks=3, usage={"input_tokens": 1_000, "output_tokens": 3})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    stream = await r.acomplete(HELLO, max_tokens=100, prompt_tokens=1_000, stream=True)
    async for _ in stream:
        break
    await stream.aclose()
    record = stream.routing
    assert (record.attempts[-1].outcome, record.attempts[-1].reserved_usd, record.cost_usd) == ("interrupted", D("0.00014"), D("0.0001004"))
    assert await spend_and_holds(store) == (D("0.0001004"), D("0.0001004"))
    await r.aclose()


def test_a_synchronous_stream_closed_by_its_consumer_settles_what_was_produced_at_once():
    """``Router.complete(..., stream=True)``: the consumer reads the first chunk ("abcd" of 12 characters in 3
    chunks) and calls ``close()``. The stream is closed there and then (not when it is garbage-collected): the
    1,000-token prompt and 4 characters = 1 output token are billed, 1,000 x $0.10 + 1 x $0.40 per 1M =
    $0.0001004, and the $0.00014 hold is settled, none left held; the record says the stream was cut."""
    import asyncio

    store, transport = MemoryStore(), MockTransport(lightweight=True)
    transport.script("gemini-2.5-flash-lite", text="abcdefghijkl", stream_chunks=3, usage={"input_tokens": 1_000, "output_tokens": 3})
    r = Router(policy("gemini-2.5-flash-lite"), store=store, transport=transport, watch_policy=False)
    try:
        stream = r.complete(HELLO, max_tokens=100, prompt_tokens=1_000, stream=True)
        next(iter(stream))
        stream.close()
        assert asyncio.run(spend_and_holds(store)) == (D("0.0001004"), D("0.0001004"))
        record = stream.routing
        assert (record.attempts[-1].outcome, record.cost_usd) == ("interrupted", D("0.0001004"))
    finally:
        r.close()
