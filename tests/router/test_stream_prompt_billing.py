"""Issue 11 item 5: a stream that ends early bills its prompt from the best known count.

Order: what the provider reported (Claude's ``message_start`` carries the whole prompt before any text),
then the exact count known before sending (the caller's ``prompt_tokens``), then the ~4 characters a
token estimate; never below a count the provider reported. Through litellm's real Vertex code against the
loopback stub. Rates (seed 000): Gemini 2.5 Flash $0.30 in / $2.50 out per 1M; Claude Haiku 4.5 $1 / $5.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from router._transport.usage import StreamUsage

pytestmark = pytest.mark.litellm

MILLION = Decimal(1_000_000)
HELLO = [{"role": "user", "content": "hello there"}]


def write(tmp_path, model: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(
        f"version: 1\ncandidates: [{{model: {model}}}]\nprofiles: {{p: {{objective: cheapest}}}}\ndefault_profile: p\n"
        "settings: {count_tokens: never}\n",
        encoding="utf-8",
    )
    return str(path)


async def first_chunk_then_close(r, messages, **kwargs):
    stream = await r.acomplete(messages, max_tokens=1_000, stream=True, **kwargs)
    async for _ in stream:
        break
    await stream.aclose()
    record = stream.routing
    assert record.attempts[-1].outcome == "interrupted" and record.usage["complete"] is False
    return record


def cost(rate_in: str, rate_out: str, input_tokens: int, output_tokens: int) -> Decimal:
    return (input_tokens * Decimal(rate_in) + output_tokens * Decimal(rate_out)) / MILLION


async def test_a_gemini_stream_closed_after_its_first_chunk_bills_the_callers_prompt_tokens(stub_router, vertex_stub, tmp_path):
    """Gemini reports usage only at the end: the caller's exact count is the best known (was 3 tokens)."""
    r = stub_router(write(tmp_path, "gemini-2.5-flash"))
    vertex_stub.script("gemini-2.5-flash", text="word " * 200, usage={"input_tokens": 2_000, "output_tokens": 250}, stream_chunks=10, chunk_delay_s=0.05)
    record = await first_chunk_then_close(r, HELLO, prompt_tokens=2_000)
    assert record.usage["input_tokens"] == 2_000
    produced = record.usage["output_tokens"]
    assert 0 < produced < 250  # what was received, estimated from its characters
    assert record.cost_usd == cost("0.30", "2.50", 2_000, produced)


async def test_a_claude_stream_closed_early_bills_the_prompt_reported_at_message_start(stub_router, vertex_stub, tmp_path):
    """No prompt_tokens: the provider's count (2,500) beats the local estimate (about 3,000)."""
    r = stub_router(write(tmp_path, "claude-haiku-4-5"))
    vertex_stub.script("claude-haiku-4-5", text="word " * 200, usage={"input_tokens": 2_500, "output_tokens": 250}, stream_chunks=10, chunk_delay_s=0.05)
    long_prompt = [{"role": "user", "content": "hello " * 2_000}]  # 12,000 characters: estimated ~3,000 tokens
    record = await first_chunk_then_close(r, long_prompt)
    assert record.attempts[-1].reserved_usd >= cost("1", "5", 3_000, 1_000)  # the estimate was reserved
    assert record.usage["input_tokens"] == 2_500
    assert record.cost_usd == cost("1", "5", 2_500, record.usage["output_tokens"])


async def test_the_providers_reported_prompt_beats_the_callers_count(stub_router, vertex_stub, tmp_path):
    r = stub_router(write(tmp_path, "claude-haiku-4-5"))
    vertex_stub.script("claude-haiku-4-5", text="word " * 200, usage={"input_tokens": 1_900, "output_tokens": 250}, stream_chunks=10, chunk_delay_s=0.05)
    record = await first_chunk_then_close(r, HELLO, prompt_tokens=2_000)
    assert record.usage["input_tokens"] == 1_900
    assert record.cost_usd == cost("1", "5", 1_900, record.usage["output_tokens"])


async def test_a_claude_stream_cut_by_the_provider_bills_the_reported_prompt(stub_router, vertex_stub, tmp_path):
    r = stub_router(write(tmp_path, "claude-haiku-4-5"))
    vertex_stub.script("claude-haiku-4-5", text="word " * 200, usage={"input_tokens": 1_800, "cached_tokens": 1_000, "output_tokens": 250}, stream_chunks=10, cut_stream_after=2)
    stream = await r.acomplete(HELLO, max_tokens=1_000, stream=True, prompt_tokens=2_000)
    async for _ in stream:
        pass
    record = stream.routing
    assert record.attempts[-1].outcome == "interrupted"
    assert (record.usage["input_tokens"], record.usage["cached_input_tokens"]) == (1_800, 1_000)
    # 800 plain x $1 + 1,000 cache reads x $0.10 + output x $5, per 1M
    assert record.cost_usd == (800 * Decimal(1) + 1_000 * Decimal("0.10") + record.usage["output_tokens"] * Decimal(5)) / MILLION


# ---------------------------------------------------------------------- the accumulator itself
class _Usage:
    def __init__(self, prompt_tokens: int, completion_tokens: int = 0) -> None:
        self.prompt_tokens, self.completion_tokens = prompt_tokens, completion_tokens


@pytest.mark.parametrize(
    ("exact", "reported", "billed"),
    [(None, None, 30), (2_000, None, 2_000), (2_000, 1_900, 1_900), (None, 2_500, 2_500), (2_000, 2_100, 2_100)],
)
def test_an_unfinished_stream_bills_the_best_known_prompt(exact, reported, billed):
    seen = StreamUsage(prompt_estimate=30, prompt_exact=exact)
    if reported is not None:
        seen.observe_reported(_Usage(reported, 1))
    usage = seen.final(finished=False)
    assert usage.input_tokens == billed and usage.complete is False


def test_a_final_usage_is_never_below_a_reported_prompt():
    seen = StreamUsage(prompt_estimate=30)
    seen.observe_reported(_Usage(2_500, 1))
    seen.observe(type("Chunk", (), {"choices": [], "usage": _Usage(2_000, 40)})())
    assert seen.final(finished=True).input_tokens == 2_500
