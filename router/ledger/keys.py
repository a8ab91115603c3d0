"""Names and Redis keys. Every name that reaches a key is validated or encoded here, so no input can write
outside its prefix and no two names share a key.

Caller-supplied names are encoded reversibly by :mod:`router.ledger.names` (injective: no two names
share a key). Pool ids, model families, policy names, prefixes and ids are not encoded but checked against
a charset without key separators, so they too reach keys unchanged and injectively.

All keys of one ledger share a single Redis Cluster hash tag, the prefix itself: ``{router}:...``.
A multi-scope reservation touches the counters of every scope it names in one Lua script, and a script
may only touch keys of one slot, so per-scope tags are impossible; per-request tags would not help
either (the scope counters are shared by all requests). The tradeoff: one ledger lives on one cluster
shard (one primary carries its load and memory). Use several prefixes to spread independent ledgers.

Key layout (``P`` is the prefix; ``BID`` is ``BudgetScope.id``, e.g. ``tenant:acme|rolling:24h``)::

    {P}:r:BID            hash  rolling spend: bucket index -> nano-USD, t (total), lo (oldest index)
    {P}:c:BID:START      str   calendar spend of the period starting at START (epoch ms)
    {P}:hz:BID           zset  active holds: member "RID|nano", score = expiry (ms)
    {P}:ha:BID           str   sum of the holds in hz (nano-USD)
    {P}:lh:BID           hash  budget leases (slices): OWNER -> "nano|expiry_ms" (the hold is "L:OWNER|nano" in hz)
    {P}:h:RID            hash  reservation record: st (held|settled|released), amt, b (BIDs), act
    {P}:id               str   the ledger's random id (binds fail_open journals to this ledger)
    {P}:meta             hash  known budgets: BID -> "limit_nano|last_seen_ms" (for ``router spend``)
    {P}:q:POOL:START     str   units used in a quota pool's period
    {P}:qr:POOL:RID      str   consume result "free|billable" (idempotency)
    {P}:rp:FAMILY        hash  priority tokens: second -> tokens, t, lo, ss (streak start minute), lm
    {P}:rd:EVENT         str   replay de-duplication of a journaled ramp event
    {P}:pt:MODEL@REGION  hash  Provisioned Throughput adjusted tokens: second -> tokens, t, lo
    {P}:rt:POOL          hash  rate pool (Count Tokens requests): second -> requests, t, lo
    {P}:rs:POOL:DAY      hash  outcomes of the prompt counts of a UTC day: outcome -> count
    {P}:ptm:KEY:YYYY-MM  hash  PT month totals: served, spilled, tokens, amortised, paygo_avoided, spill_paygo
    {P}:ptk              hash  index of PT month totals: KEY|YYYY-MM -> last update (ms)
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache

from router.ledger.names import MAX_NAME_CHARS, check_scope, decode_name, encode_name, scope_of  # noqa: F401 - re-exported
from router.ledger.types import BudgetScope, Window
from router.ledger.windows import zone

PREFIX_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}\Z")
POOL_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,128}\Z")
FAMILY_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}\Z")
#: Reservation and request ids: printable ASCII without spaces or braces, at most 256 characters.
ID_RE = re.compile(r"^[!-z|~]{1,256}\Z")


def check_prefix(prefix: str) -> str:
    """Validate a key prefix (letters, digits, ``_.-``)."""
    if not isinstance(prefix, str) or not PREFIX_RE.match(prefix):
        raise ValueError(f"invalid ledger key prefix {prefix!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    return prefix


def check_id(value: str, what: str = "reservation id") -> str:
    """Validate a reservation or request id (printable ASCII, no whitespace or braces)."""
    if not isinstance(value, str) or not ID_RE.match(value):
        raise ValueError(f"invalid {what} {value!r}: use 1-256 printable ASCII characters without spaces or braces")
    return value


POLICY_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}\Z")
POLICY_VERSION_RE = re.compile(r"^[0-9a-f]{12}\Z")


def check_policy(name: str, version: str | None = None) -> str:
    """Validate a shared policy's name (and version id, 12 hex digits)."""
    if not isinstance(name, str) or not POLICY_NAME_RE.match(name):
        raise ValueError(f"invalid policy name {name!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    if version is not None and (not isinstance(version, str) or not POLICY_VERSION_RE.match(version)):
        raise ValueError(f"invalid policy version {version!r}: 12 hex digits")
    return name


def check_pool(pool_id: str) -> str:
    """Validate a quota pool id."""
    if not isinstance(pool_id, str) or not POOL_RE.match(pool_id):
        raise ValueError(f"invalid quota pool id {pool_id!r}: use 1-128 of A-Z a-z 0-9 _ . -")
    return pool_id


def check_family(family: str) -> str:
    """Validate a model family name (lower-case letters, digits, ``_.-``)."""
    if not isinstance(family, str) or not FAMILY_RE.match(family):
        raise ValueError(f"invalid model family {family!r}: use lower-case letters, digits, _ . -")
    return family


#: (id, window kind) of budgets that passed check_budget: the id spells the scope and window it checks.
_CHECKED: set[tuple[str, str]] = set()


def check_budget(budget: BudgetScope) -> BudgetScope:
    """Validate a budget scope again (the dataclass may have been built around its checks) and its zone."""
    if type(budget) is BudgetScope and (budget.id, budget.window.kind) in _CHECKED:
        return budget
    if not isinstance(budget, BudgetScope):
        raise TypeError(f"expected a BudgetScope, not {type(budget).__name__}")
    check_scope(budget.scope)
    Window(budget.window.kind, budget.window.span, budget.window.timezone)  # re-run its checks
    if budget.window.kind == "calendar":
        zone(budget.window.timezone)
    if len(_CHECKED) > 4096:
        _CHECKED.clear()
    _CHECKED.add((budget.id, budget.window.kind))
    return budget


_LIMITS: dict[tuple[str, Decimal], int] = {}


def checked_limit(budget: BudgetScope) -> int:
    """Validate ``budget`` (cached per distinct budget) and return its limit in nano-USD.

    The cache is keyed by ``(id, limit_usd)``: the id spells the scope and the window exactly as
    validated, so it costs a dict lookup, not the dataclass's hashing of every field."""
    if type(budget) is BudgetScope:
        try:
            found = _LIMITS.get((budget.id, budget.limit_usd))
        except TypeError:  # an unhashable limit (a signalling NaN): refused below
            found = None
        if found is not None:
            return found
    from router.ledger.money import to_nano

    check_budget(budget)
    limit = to_nano(budget.limit_usd, what=f"limit of {budget.id}")
    if type(budget.limit_usd) is Decimal:
        if len(_LIMITS) > 4096:
            _LIMITS.clear()
        _LIMITS[(budget.id, budget.limit_usd)] = limit
    return limit


@lru_cache(maxsize=4096)
def window_of(bid: str) -> Window:
    """The :class:`Window` of a ``BudgetScope.id``."""
    return Window.parse(bid.partition("|")[2])


def parse_budget_id(bid: str, limit_usd) -> BudgetScope:  # noqa: ANN001 - Decimal
    """Rebuild a :class:`BudgetScope` from its ``id`` (``scope|window``) and a limit."""
    scope, sep, window = bid.partition("|")
    if not sep:
        raise ValueError(f"invalid budget id {bid!r}")
    return check_budget(BudgetScope(scope, Window.parse(window), limit_usd))


class KeySpace:
    """Builds the Redis keys of one ledger (all under the hash tag ``{prefix}``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = check_prefix(prefix)
        self.base = "{" + prefix + "}:"
        self.meta = self.base + "meta"
        self.ledger_id = self.base + "id"

    def rolling(self, bid: str) -> str:
        return f"{self.base}r:{bid}"

    def calendar(self, bid: str, start_ms: int) -> str:
        return f"{self.base}c:{bid}:{start_ms}"

    def hold_set(self, bid: str) -> str:
        return f"{self.base}hz:{bid}"

    def hold_sum(self, bid: str) -> str:
        return f"{self.base}ha:{bid}"

    def lease(self, bid: str) -> str:
        return f"{self.base}lh:{bid}"

    def drain_flag(self, bid: str) -> str:
        """Set by a process that needs the other processes' slices of ``bid`` back (see router.ledger.leases)."""
        return f"{self.base}ld:{bid}"

    def slot(self, spend_key: str, bid: str) -> list[str]:
        """The five keys a batch script reads per budget slot: spend, hold set, hold sum, lease, drain flag."""
        return [spend_key, self.hold_set(bid), self.hold_sum(bid), self.lease(bid), self.drain_flag(bid)]

    def record(self, rid: str) -> str:
        return f"{self.base}h:{rid}"

    def pool(self, pool_id: str, start_ms: int) -> str:
        return f"{self.base}q:{pool_id}:{start_ms}"

    def pool_request(self, pool_id: str, request_id: str) -> str:
        return f"{self.base}qr:{pool_id}:{request_id}"

    def ramp(self, family: str) -> str:
        return f"{self.base}rp:{family}"

    def rate(self, pool_id: str) -> str:
        return f"{self.base}rt:{check_pool(pool_id)}"

    def rate_stats(self, pool_id: str, day: int) -> str:
        return f"{self.base}rs:{check_pool(pool_id)}:{int(day)}"

    def ramp_dedupe(self, event_id: str) -> str:
        return f"{self.base}rd:{event_id}"

    def policy(self, name: str) -> str:
        return f"{self.base}pol:{name}"

    def policy_history(self, name: str) -> str:
        return f"{self.base}polh:{name}"

    def policy_text(self, name: str, version: str) -> str:
        return f"{self.base}polt:{name}:{version}"

    def pt(self, key: str) -> str:
        """Provisioned Throughput capacity counter of ``MODEL@REGION`` (see :mod:`router.ledger.capacity`)."""
        return f"{self.base}pt:{key}"

    def pt_month(self, key: str, month: str) -> str:
        """Monthly Provisioned Throughput totals of ``MODEL@REGION`` (served, spilled, tokens, costs)."""
        return f"{self.base}ptm:{key}:{month}"

    def pt_index(self) -> str:
        """Index of the PT keys and months with totals: ``KEY|YYYY-MM`` -> last update (ms)."""
        return f"{self.base}ptk"

    def pattern(self) -> str:
        """A SCAN pattern matching every key of this ledger (for tests and cleanup)."""
        return "{" + self.prefix + "}:*"
