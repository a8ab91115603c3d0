"""Usage mapping where a plausible bug under-bills (issue 12's surviving mutations): Anthropic cache reads
reported only as ``cache_read_input_tokens``, reasoning larger than the completion, and streams cut short
(reasoning text counts as produced output; a mid-stream usage never under-counts the text received)."""

from __future__ import annotations

from router._transport import StreamUsage, usage_from_response


class _Resp:
    def __init__(self, usage):
        self.usage = usage
        self._hidden_params = {}


def _chunk(content=None, reasoning=None, usage=None, finish=None):
    delta = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    return {"choices": [{"delta": delta, "finish_reason": finish}], "usage": usage}


def test_anthropic_cache_reads_without_prompt_details_are_cached_tokens():
    got = usage_from_response(_Resp({"prompt_tokens": 1000, "completion_tokens": 100, "cache_read_input_tokens": 600}))
    assert (got.input_tokens, got.cached_input_tokens, got.output_tokens) == (1000, 600, 100)


def test_reasoning_is_clamped_to_the_completion():
    # a provider reporting more reasoning than completion tokens: bill the completion, all of it as thinking
    got = usage_from_response(_Resp({"prompt_tokens": 10, "completion_tokens": 50, "completion_tokens_details": {"reasoning_tokens": 80}}))
    assert (got.output_tokens, got.thinking_tokens) == (0, 50)


def test_a_cut_stream_counts_reasoning_text_as_produced():
    usage = StreamUsage(prompt_estimate=100)
    usage.observe(_chunk(reasoning="r" * 400))
    usage.observe(_chunk(content="c" * 400))
    got = usage.final(finished=False)
    # no usage chunk: 800 characters received, ~4 a token = 200 output tokens (never zero)
    assert (got.input_tokens, got.output_tokens, got.complete) == (100, 200, False)


def test_a_cut_stream_never_bills_less_than_the_text_received():
    usage = StreamUsage(prompt_estimate=100)
    usage.observe(_chunk(content="c" * 4000))
    # a usage chunk mid-way (before the stream was cut) says 10 completion tokens, 4 of them reasoning
    usage.observe(_chunk(usage={"prompt_tokens": 120, "completion_tokens": 10, "completion_tokens_details": {"reasoning_tokens": 4}}))
    got = usage.final(finished=False)
    # 4,000 characters received = 1,000 tokens, of which the 4 reasoning tokens are billed as thinking
    assert (got.input_tokens, got.output_tokens, got.thinking_tokens) == (120, 996, 4)
    # a stream that finished normally takes the provider's count as it is
    assert usage.final(finished=True).output_tokens == 6


def test_a_usage_chunk_with_prompt_tokens_only_is_the_providers_count():
    usage = StreamUsage(prompt_estimate=5)
    usage.observe(_chunk(content=""))
    usage.observe(_chunk(usage={"prompt_tokens": 120, "completion_tokens": 0}, finish="stop"))
    got = usage.final(finished=True)
    assert (got.input_tokens, got.output_tokens, got.complete) == (120, 0, True)


def test_stream_grounding_and_traffic_type_reach_the_bill():
    usage = StreamUsage(prompt_estimate=5)
    chunk = {"choices": [{"delta": {"content": "abcd"}, "finish_reason": None}], "usage": None}

    class _Chunk(dict):
        pass

    grounded = _Chunk(chunk)
    grounded.vertex_ai_grounding_metadata = [{"grounding_chunks": [{"web": {"uri": "u1"}}, {"web": {"uri": "u2"}}], "web_search_queries": ["q"]}]
    grounded._hidden_params = {"provider_specific_fields": {"traffic_type": "ON_DEMAND_PRIORITY"}}
    usage.observe(grounded)
    cut = usage.final(finished=False)  # cut before the usage chunk: estimated, with what the chunks said
    assert (cut.grounding_web_urls, cut.search_queries, cut.traffic_type, cut.output_tokens) == (2, 1, "ON_DEMAND_PRIORITY", 1)
    usage.observe(_chunk(usage={"prompt_tokens": 100, "completion_tokens": 10}, finish="stop"))
    done = usage.final(finished=True)
    assert (done.grounding_web_urls, done.search_queries, done.traffic_type, done.input_tokens) == (2, 1, "ON_DEMAND_PRIORITY", 100)
