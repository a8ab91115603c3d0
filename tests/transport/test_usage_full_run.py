"""Survivors of the full mutmut run of router/_transport/usage.py (issue 12, docs/mutation-report.md).

What the usage mapping hands the Router decides the bill: a Google Search grounded prompt is billed only when
``grounding_web_urls`` > 0, Gemini 3's search grounding per distinct ``search_queries``, a cut stream's prompt
from the best count known and its output from the text received (about 4 characters a token, rounded up), and
``answer_complete`` (``finish_seen``) decides whether a stream closed by its consumer is drained for the
provider's own count and recorded "ok". Every expected number below is counted by hand from the inputs.
"""

from __future__ import annotations

from types import SimpleNamespace

from router._transport import StreamUsage, usage_from_response
from router._transport.usage import estimate_prompt_tokens


def _chunk(text: str = "", usage: dict | None = None, finish: str | None = None) -> dict:
    """One stream chunk as litellm yields it (a mapping is read like its object form)."""
    return {"choices": [{"delta": {"content": text}, "finish_reason": finish}], "usage": usage}


def _grounded(metadata: object) -> SimpleNamespace:
    """A response with 10 prompt / 2 completion tokens and Gemini grounding metadata ``metadata``."""
    return SimpleNamespace(usage={"prompt_tokens": 10, "completion_tokens": 2}, _hidden_params={}, vertex_ai_grounding_metadata=metadata)


# ------------------------------------------------------------------ prompt estimate
def test_a_content_part_that_is_not_text_adds_no_characters() -> None:
    # "abcd" is 4 characters = 1 token; the number 7 (not text, not a part) adds nothing: 1 token, not 2.
    assert estimate_prompt_tokens([{"role": "user", "content": [{"type": "text", "text": "abcd"}, 7]}]) == 1


# ------------------------------------------------------------------ grounding metadata
def test_a_web_source_without_a_uri_still_makes_the_prompt_billable() -> None:
    # One web source with no uri: 1 web URL (Search bills a grounded prompt only with >= 1), not 0 or -1.
    got = usage_from_response(_grounded([{"groundingChunks": [{"web": {"title": "no uri"}}], "webSearchQueries": ["q"]}]))
    assert (got.grounding_web_urls, got.search_queries) == (1, 1)


def test_unnamed_web_sources_count_one_each_next_to_named_ones() -> None:
    # three sources without a uri (one missing, two empty) + one named: 4; an empty uri is not a URL to dedupe.
    metadata = [{"groundingChunks": [{"web": {}}, {"web": {"uri": ""}}, {"web": {"uri": ""}}, {"web": {"uri": "https://a.example"}}]}]
    assert usage_from_response(_grounded(metadata)).grounding_web_urls == 4


def test_the_same_web_uri_twice_is_one_url() -> None:
    metadata = [{"groundingChunks": [{"web": {"uri": "https://a.example"}}, {"web": {"uri": "https://a.example"}}]}]
    assert usage_from_response(_grounded(metadata)).grounding_web_urls == 1


def test_malformed_metadata_items_and_chunks_are_skipped_not_fatal() -> None:
    # a non-mapping item before the real one, a non-mapping chunk before a web source: 1 URL, 1 query.
    metadata = ["junk", {"groundingChunks": ["junk", {"web": {"uri": "https://a.example"}}], "webSearchQueries": ["rates"]}]
    got = usage_from_response(_grounded(metadata))
    assert (got.grounding_web_urls, got.search_queries) == (1, 1)


def test_an_empty_search_query_is_not_a_query() -> None:
    # Gemini 3 bills search grounding per query: "" is no query, "q" is one.
    got = usage_from_response(_grounded([{"webSearchQueries": ["", "q"]}]))
    assert got.search_queries == 1


# ------------------------------------------------------------------ a response given as a mapping
def test_a_response_given_as_a_mapping_is_billed_from_its_usage() -> None:
    got = usage_from_response({"usage": {"prompt_tokens": 1200, "completion_tokens": 80}})
    assert (got.input_tokens, got.output_tokens, got.complete) == (1200, 80, True)


# ------------------------------------------------------------------ streams
def test_a_cut_stream_bills_the_exact_prompt_count_known_before_sending() -> None:
    # No usage chunk: the prompt is the exact count (250), not the ~4 chars a token estimate (100).
    stream = StreamUsage(prompt_estimate=100, prompt_exact=250)
    stream.observe(_chunk("abcdefgh"))  # 8 characters -> 2 tokens
    got = stream.final(finished=False)
    assert (got.input_tokens, got.output_tokens, got.complete) == (250, 2, False)


def test_a_one_token_prompt_estimate_is_billed_as_one_token() -> None:
    got = StreamUsage(prompt_estimate=1).final(finished=False)
    assert (got.input_tokens, got.output_tokens) == (1, 0)


def test_a_stream_that_never_reported_a_traffic_type_has_none() -> None:
    stream = StreamUsage(prompt_estimate=10)
    stream.observe(_chunk("abcd", usage={"prompt_tokens": 10, "completion_tokens": 1}))
    assert stream.final(finished=True).traffic_type is None
    assert StreamUsage(prompt_estimate=10).final(finished=False).traffic_type is None


def test_the_answer_is_complete_only_once_a_finish_reason_arrived() -> None:
    # answer_complete (finish_seen) makes a stream closed by its consumer drained and recorded "ok".
    stream = StreamUsage(prompt_estimate=10)
    assert stream.finish_seen is False
    stream.observe(_chunk("abcd"))
    assert stream.finish_seen is False
    stream.observe(_chunk("", finish="stop"))
    assert stream.finish_seen is True


def test_a_usage_chunk_of_zeros_is_not_the_providers_count() -> None:
    # litellm may attach an all-zero usage to a chunk: the stream has no usage yet and a cut stream is billed
    # from its prompt estimate (40) and its text (12 characters -> 3 tokens), marked incomplete.
    stream = StreamUsage(prompt_estimate=40)
    stream.observe(_chunk("abcdefghijkl", usage={"prompt_tokens": 0, "completion_tokens": 0}))
    assert not stream.has_usage
    got = stream.final(finished=False)
    assert (got.input_tokens, got.output_tokens, got.complete) == (40, 3, False)


def test_a_mid_stream_report_of_no_prompt_is_ignored() -> None:
    # a report with 0 prompt tokens must not become the prompt of a cut stream (it would bill 0 for the prompt).
    stream = StreamUsage(prompt_estimate=40)
    stream.observe_reported({"prompt_tokens": 0, "completion_tokens": 5})
    got = stream.final(finished=False)
    assert got.input_tokens == 40


def test_the_largest_of_several_mid_stream_reports_is_kept() -> None:
    stream = StreamUsage(prompt_estimate=40)
    stream.observe_reported({"prompt_tokens": 500, "completion_tokens": 0})
    stream.observe_reported({"prompt_tokens": 800, "completion_tokens": 0})
    stream.observe_reported({"prompt_tokens": 300, "completion_tokens": 0})
    assert stream.final(finished=False).input_tokens == 800


def test_a_report_the_same_size_as_the_final_usage_leaves_the_final_parts() -> None:
    # message_start said 1000 prompt tokens, 600 of them cache reads; the final usage says 1000 with 200 cache
    # reads. The final count is the provider's own: 200 cached, not the earlier 600.
    stream = StreamUsage(prompt_estimate=40)
    stream.observe_reported({"prompt_tokens": 1000, "completion_tokens": 0, "cache_read_input_tokens": 600})
    stream.observe(_chunk("abcd", usage={"prompt_tokens": 1000, "completion_tokens": 1, "cache_read_input_tokens": 200}))
    got = stream.final(finished=True)
    assert (got.input_tokens, got.cached_input_tokens, got.output_tokens) == (1000, 200, 1)


def test_grounding_metadata_of_a_stream_chunk_given_as_one_object_is_counted() -> None:
    # one chunk carries the metadata as a dict (not a list): 2 web URLs, 1 query.
    stream = StreamUsage(prompt_estimate=10)
    chunk = SimpleNamespace(choices=[], usage=None, _hidden_params={}, vertex_ai_grounding_metadata={
        "groundingChunks": [{"web": {"uri": "https://a.example"}}, {"web": {"uri": "https://b.example"}}], "webSearchQueries": ["q"]})
    stream.observe(chunk)
    got = stream.final(finished=False)
    assert (got.grounding_web_urls, got.search_queries) == (2, 1)


def test_a_number_the_provider_gave_as_text_that_is_no_number_counts_zero() -> None:
    # reasoning_tokens "n/a": no reasoning tokens, so all 20 completion tokens are output (not 19 + 1 thinking).
    got = usage_from_response({"usage": {"prompt_tokens": 100, "completion_tokens": 20, "completion_tokens_details": {"reasoning_tokens": "n/a"}}})
    assert (got.input_tokens, got.output_tokens, got.thinking_tokens) == (100, 20, 0)
