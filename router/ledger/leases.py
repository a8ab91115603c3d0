"""Budget leases: the local side. A process leases a slice of a budget from Redis and grants reservations
from it at memory speed; see :class:`~router.ledger.deferred.DeferredRedisStore` for the Redis side.

In Redis a lease is a hold (member ``L:OWNER|nano`` of the budget's hold zset), so settled spend + holds +
leased slices never exceed the limit: a reservation granted from a slice can never overflow the cap. A
settle of such a reservation books the bill and shrinks the slice by the same amount in one script
(``settle_batch.lua``); giving a slice back, taking a new one and deciding the reservations that did not
fit locally is one script call (``reserve_batch.lua``).

Sizing (:class:`LeaseSizing`): a slice is about ``horizon_s`` of this process's recent demand on the
budget (decayed over about a second), at most ``1/share`` of what is still free in the budget (so slices
shrink as the budget fills), and none when that is smaller than ``min_requests`` times the request
(so none near the limit: the last part of a cap is always decided by Redis itself). A request denied
while other processes hold slices that would make it fit asks them to drain (a flag each holder reads
at least every ``poll_s``: in the reply of its settle batches, which carry the flags of their budgets, or
with one ``MGET`` when no batch read it lately; it then stops granting from the slice and gives its free
part back at its next ``poll_s`` tick) and is decided again once they gave their free part back (for at
most ``drain_wait_s``), so leases never strand capacity: a cap is used up to the last request that fits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LeaseSizing:
    """The knobs of budget leases (``?leases=on``; every field can be set in the ledger URL, see README)."""

    horizon_s: float = 0.5
    share: int = 8
    min_requests: int = 4
    ttl_s: float = 30.0
    idle_s: float = 1.0
    poll_s: float = 0.05
    drain_wait_s: float = 2.0
    drain_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("horizon_s", "ttl_s", "idle_s", "poll_s", "drain_wait_s", "drain_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
                raise ValueError(f"lease {name} must be a number of seconds in (0, 3600], not {value!r}")
        for name in ("share", "min_requests"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
                raise ValueError(f"lease {name} must be a positive integer, not {value!r}")


@dataclass
class Lease:
    """This process's slice of one budget, as far as this process knows it."""

    size: int = 0  # the slice in Redis minus this process's logged, not yet applied settles on it
    used: int = 0  # reservations granted from it and still held
    expiry: int = 0  # epoch ms
    pending: int = 0  # logged slice decrements not applied in Redis yet
    demand: float = 0.0  # nano-USD reserved recently, decayed with a 1 s time constant
    demand_at: int = 0
    last_use: int = 0
    draining_until: int = 0
    flag_at: int = 0  # epoch ms the budget's drain flag was last read from Redis (a batch reply or a poll)

    @property
    def free(self) -> int:
        return self.size - self.used

    def note_demand(self, now: int, nano: int) -> None:
        """Count a reservation of ``nano`` at ``now`` (ms) in the recent demand."""
        if self.demand_at:
            self.demand *= math.exp(-max(0, now - self.demand_at) / 1000)
        self.demand += nano
        self.demand_at = now

    def want(self, sizing: LeaseSizing, now: int) -> int:
        """The slice worth asking for: about ``horizon_s`` of recent demand."""
        if not self.demand_at:
            return 0
        decayed = self.demand * math.exp(-max(0, now - self.demand_at) / 1000)
        return int(decayed * sizing.horizon_s)

    def usable(self, now: int, until: int, nano: int) -> bool:
        """Can a reservation of ``nano`` held until ``until`` (ms) be granted from this slice now?"""
        return self.expiry >= until and self.draining_until <= now and self.free >= nano
