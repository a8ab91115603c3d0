"""Priority PayGo ramp limits (seed ``003_da2c08c521b0db0e.txt``, section "Limites de variation").

The seed: Priority PayGo sets organisation-level ramp limits; the starting limit is 4 million tokens per
minute for Gemini Flash and Flash-Lite models and 1 million for Gemini Pro models; "La limite de rampe
augmente de 50 % toutes les 10 minutes d'utilisation soutenue" (+50 % per 10 minutes of sustained use);
a request over the limit while the system is loaded is downgraded to Standard PayGo (billed as such).

The ledger counts priority tokens per model family over the last 60 seconds (1-second buckets: the
count covers between 59 and 60 s) so a policy can stop asking for priority before requests get
downgraded. *Sustained use* is read as consecutive UTC minutes each with some priority tokens; a whole
minute without any ends the streak and the limit falls back to its base. The seed states no ceiling;
the growth is capped at :data:`MAX_STEPS` steps only to keep the numbers finite.
"""

from __future__ import annotations

#: Base ramp limit, tokens per minute, by ``priority_ramp_family`` (seed 003).
RAMP_BASE_TPM: dict[str, int] = {"flash": 4_000_000, "flash-lite": 4_000_000, "pro": 1_000_000}
#: Minutes of sustained use per +50 % step (seed 003).
STEP_MINUTES = 10
MAX_STEPS = 40
#: Tokens are bucketed per second; the count covers the last 60 buckets.
BUCKET_MS = 1000
BUCKETS = 60
#: Ramp counters expire after this much idle time (the streak is broken long before).
KEY_TTL_MS = 300_000


def base_tpm(family: str) -> int:
    """The seed's starting ramp limit of ``family`` (``flash``, ``flash-lite`` or ``pro``)."""
    try:
        return RAMP_BASE_TPM[family]
    except KeyError:
        raise ValueError(f"unknown priority ramp family {family!r}: one of {sorted(RAMP_BASE_TPM)}") from None


def limit_tpm(family: str, sustained_minutes: int) -> int:
    """The ramp limit after ``sustained_minutes`` of sustained use: base x 1.5 per full 10 minutes
    (exact integer arithmetic, rounded down)."""
    steps = min(max(0, sustained_minutes) // STEP_MINUTES, MAX_STEPS)
    return base_tpm(family) * 3**steps // 2**steps


def sustained_minutes(streak_start: int | None, last_minute: int | None, now_minute: int) -> int:
    """Minutes of the current streak at ``now_minute`` (0 when the last use is older than one minute)."""
    if streak_start is None or last_minute is None or last_minute < now_minute - 1:
        return 0
    return max(0, now_minute - streak_start)
