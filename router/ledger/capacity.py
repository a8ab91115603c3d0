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
from decimal import Decimal

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


#: Monthly PT totals (per key and UTC month) are kept this long.
MONTH_TTL_MS = 400 * 86_400_000


def month_of(now_ms: int) -> str:
    """The UTC month ``YYYY-MM`` of an epoch-ms instant (PT totals are kept per calendar month, UTC)."""
    import datetime as dt

    return dt.datetime.fromtimestamp(now_ms / 1000, dt.timezone.utc).strftime("%Y-%m")


@dataclass(frozen=True)
class PtTotals:
    """Provisioned Throughput use of one ``MODEL@REGION`` in one UTC month: requests served by PT and
    spilled to PayGo, adjusted tokens served, their amortised subscription cost, the PayGo cost PT
    avoided, and the PayGo cost of the spills."""

    key: str
    month: str
    served: int = 0
    spilled: int = 0
    tokens: int = 0
    amortised_usd: Decimal = Decimal(0)
    paygo_avoided_usd: Decimal = Decimal(0)
    spill_paygo_usd: Decimal = Decimal(0)

    @property
    def served_share(self) -> Decimal:
        """Share of the requests PT served (0 when none)."""
        total = self.served + self.spilled
        return Decimal(self.served) / Decimal(total) if total else Decimal(0)


__all__ = ["KEY_TTL_MS", "MONTH_TTL_MS", "PtClaim", "PtTotals", "month_of", "WINDOW_S", "check_pt_key", "check_tokens", "first_bucket"]
