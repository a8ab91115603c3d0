"""Kills mutation survivors of router/_transport/usage.py (issue 12, docs/mutation-report.md section 3).

Expected token counts are computed by hand: about 4 characters a token, rounded up, none for no text.
"""

from __future__ import annotations

from router._transport.usage import estimate_prompt_tokens, estimate_tokens


def test_no_text_is_zero_tokens_and_one_character_is_one() -> None:
    # A cut stream that received no text must bill 0 output tokens, not 1.
    assert estimate_tokens(0) == 0
    assert estimate_tokens("") == 0
    assert estimate_tokens(1) == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2


def test_prompt_estimate_counts_nested_parts_and_skips_none() -> None:
    # 12 characters of text part + 8 characters in a nested "content" part + a None content = 20 -> 5 tokens.
    messages = [
        {"role": "assistant", "content": None},
        {"role": "user", "content": [
            {"type": "text", "text": "abcdefghijkl"},
            {"type": "wrapper", "content": [{"type": "text", "text": "mnopqrst"}]},
        ]},
    ]
    assert estimate_prompt_tokens(messages) == 5
    # 20 characters exactly at a token boundary: one more character (anywhere) is one more token.
    messages[1]["content"].append({"type": "wrapper", "content": "u"})
    assert estimate_prompt_tokens(messages) == 6


def _chunk(text: str = "", usage: dict | None = None) -> dict:
    chunk: dict = {"choices": [{"delta": {"content": text}, "finish_reason": None}]}
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def test_a_usage_chunk_with_completion_tokens_only_is_the_bill() -> None:
    from router._transport import StreamUsage

    stream = StreamUsage(prompt_estimate=40)
    stream.observe(_chunk("abcd"))
    stream.observe(_chunk(usage={"prompt_tokens": 0, "completion_tokens": 7}))
    assert stream.has_usage
    final = stream.final(finished=True)
    assert (final.input_tokens, final.output_tokens, final.complete) == (0, 7, True)


def test_a_prompt_reported_mid_stream_is_never_undercut() -> None:
    from router._transport import StreamUsage

    # Reported 500 prompt tokens first (Claude's message_start), the final usage says 10: bill 500.
    stream = StreamUsage(prompt_estimate=40)
    stream.observe_reported({"prompt_tokens": 500, "completion_tokens": 0})
    stream.observe(_chunk("abcdefgh", usage={"prompt_tokens": 10, "completion_tokens": 3}))
    final = stream.final(finished=True)
    assert (final.input_tokens, final.output_tokens) == (500, 3)
    # A cut stream with no usage chunk: the reported prompt (500), not the estimate (40); 8 chars -> 2 tokens.
    cut = StreamUsage(prompt_estimate=40)
    cut.observe_reported({"prompt_tokens": 500, "completion_tokens": 0})
    cut.observe(_chunk("abcdefgh"))
    final = cut.final(finished=False)
    assert (final.input_tokens, final.output_tokens, final.complete) == (500, 2, False)


def test_a_prompt_of_up_to_four_characters_is_one_token() -> None:
    assert estimate_prompt_tokens([{"role": "user", "content": "abcd"}]) == 1
    assert estimate_prompt_tokens([{"role": "user", "content": ""}]) == 1  # never 0: a request is never free
    assert estimate_prompt_tokens([{"role": "user", "content": "abcde"}]) == 2


def test_grounding_metadata_given_as_one_object_is_counted() -> None:
    # litellm may carry Gemini's groundingMetadata as one dict instead of a list of them: 2 web sources, 1 query.
    from types import SimpleNamespace

    from router._transport.usage import usage_from_response

    metadata = {"groundingChunks": [{"web": {"uri": "https://a.example"}}, {"web": {"uri": "https://b.example"}}],
                "webSearchQueries": ["rates"]}
    response = SimpleNamespace(usage={"prompt_tokens": 10, "completion_tokens": 2}, vertex_ai_grounding_metadata=metadata)
    usage = usage_from_response(response)
    assert (usage.grounding_web_urls, usage.search_queries) == (2, 1)
