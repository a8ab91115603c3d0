"""Provisioned Throughput capacity in the ledger: burndown-adjusted tokens per (model, region) over a
rolling window shared by every process using the store.

Vertex checks PT quota over a *quota enforcement period* of up to 30 seconds for Gemini models; the
ledger counts adjusted tokens in 1-second buckets over the last :data:`WINDOW_S` seconds (the count
covers between 29 and 30 s). Like Vertex, a request claims an *estimate* before it is sent
(:meth:`Store.pt_claim`, granted only while the window's tokens + the estimate stay within the capacity)
and the difference to the actual usage is reconciled afterwards (:meth:`Store.pt_adjust`), in the bucket
the claim went to; a request that spilled to PayGo gives its whole estimate back.

Key: ``{P}:pt:MODEL@REGION``, a rolling hash like the priority ramp (bucket second -> tokens, t, lo).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Rolling window and bucket size, seconds (see :mod:`router.provisioned` for the assumption).
WINDOW_S = 30
BUCKET_MS = 1000
#: A PT counter left idle this long expires.
KEY_TTL_MS = 120_000
PT_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,127}@[a-z0-9][a-z0-9\-]{0,63}\Z")


def check_pt_key(key: str) -> str:
    """Validate a capacity key ``MODEL@REGION`` (lower-case catalog id and location)."""
    if not isinstance(key, str) or not PT_KEY_RE.match(key):
        raise ValueError(f"invalid Provisioned Throughput key {key!r}: use MODEL@REGION (lower-case letters, digits, _ . -)")
    return key


def check_tokens(tokens: int, what: str = "tokens", signed: bool = False) -> int:
    if isinstance(tokens, bool) or not isinstance(tokens, int) or (tokens < 0 and not signed) or abs(tokens) > 2**52:
        raise ValueError(f"{what} must be {'an' if signed else 'a non-negative'} integer (|n| <= 2^52), not {tokens!r}")
    return tokens


def first_bucket(now_ms: int) -> int:
    """The oldest bucket (second) still in the window at ``now_ms``."""
    return now_ms // BUCKET_MS - WINDOW_S + 1


@dataclass(frozen=True)
class PtClaim:
    """The answer to a capacity claim: ``granted`` (the estimate was added), the window's adjusted
    tokens after it (or as they stand when denied), the capacity, and the bucket to reconcile in."""

    granted: bool
    used: int
    capacity: int
    bucket: int

    @property
    def headroom(self) -> int:
        return max(0, self.capacity - self.used)


__all__ = ["KEY_TTL_MS", "PtClaim", "WINDOW_S", "check_pt_key", "check_tokens", "first_bucket"]
