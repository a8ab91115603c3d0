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
