"""A Router wired to the stub by the pytest plugin's ``stub_router`` fixture (litellm's real Vertex code)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.litellm

POLICY = """\
version: 1
profiles:
  a:
    candidates:
      - model: gemini-2.5-flash
      - model: claude-sonnet-4-5
    objective: cheapest
default_profile: a
"""


@pytest.fixture
def router(stub_router, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return stub_router(str(path), watch_policy=False)


async def test_fallback_after_429_and_usage_billed(router, vertex_stub):
    vertex_stub.script("gemini-2.5-flash", error="rate_limited")
    vertex_stub.script("claude", usage={"input_tokens": 1000, "output_tokens": 100})
    response = await router.acomplete([{"role": "user", "content": "hello"}], max_tokens=200, prompt_tokens=1000)
    assert response.choices[0].message.content
    record = response.routing
    assert [a.outcome for a in record.attempts] == ["rate_limited", "ok"]
    assert record.model == "claude-sonnet-4-5"
    assert record.usage["input_tokens"] == 1000 and record.usage["output_tokens"] == 100
    assert record.cost_usd > 0
    assert [r.api for r in vertex_stub.model_requests()] == ["gemini", "anthropic"]


async def test_interrupted_stream_is_settled_for_what_was_produced(router, vertex_stub):
    vertex_stub.script("gemini-2.5-flash", text="word " * 80, stream_chunks=8, cut_stream_after=3)
    stream = await router.acomplete([{"role": "user", "content": "hello"}], max_tokens=200, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks
    record = stream.routing
    assert record.attempts[-1].outcome == "interrupted"
    assert record.usage["complete"] is False and record.usage["output_tokens"] > 0
    assert record.cost_usd > 0
