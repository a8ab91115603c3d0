"""What the decision engine reads: the request's features and a snapshot of ledger state.

Prompt tokens are estimated locally, without a network call: about **4 characters a token** (the Count
Tokens reference: "for all Gemini models, one token is about four characters"), rounded up per message,
plus a small per-message overhead (:data:`MESSAGE_OVERHEAD_TOKENS` for the role and turn markers) and
:data:`REPLY_OVERHEAD_TOKENS` once. A non-text part (image, audio, file) counts
:data:`MEDIA_PART_TOKENS`; pass an exact count (``prompt_tokens=``) when you have one.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from router.errors import RequestError
from router.ledger.names import MAX_NAME_CHARS, encode_name
from router.ledger.types import LedgerSnapshot

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
REPLY_OVERHEAD_TOKENS = 3
MEDIA_PART_TOKENS = 258
_ZERO = Decimal(0)
#: Priority PayGo ramp start limits from the Priority PayGo guide (tokens per minute), used when the
#: ledger reports nothing for a family yet.
RAMP_START_TPM: dict[str, int] = {"flash": 4_000_000, "flash-lite": 4_000_000, "pro": 1_000_000}


def check_name(field: str, value: Any, what: str = "") -> str:
    """A tenant / app / tag name as the ledger accepts it (a non-empty string of at most 128 characters;
    any characters, encoded injectively in ledger keys), else :class:`RequestError` naming ``field``
    (``what`` says which part of it, e.g. "a tag name")."""
    if type(value) is str and value in _GOOD_NAMES:  # seen and accepted before: the checks depend on the value only
        return value
    part = f"{what} " if what else ""
    if not isinstance(value, str):
        raise RequestError(field, f"{part}must be a string, not {type(value).__name__} ({value!r})")
    if not value:
        raise RequestError(field, f"{part}must not be empty: pass None (or leave it out) for none")
    if len(value) > MAX_NAME_CHARS:
        raise RequestError(field, f"{part}is {len(value)} characters long; at most {MAX_NAME_CHARS} are allowed")
    if not value.isascii():  # only non-ASCII text can fail to encode (a lone surrogate)
        try:
            encode_name(value)
        except ValueError as exc:
            raise RequestError(field, f"{part}{exc}") from None
    if type(value) is str:
        if len(_GOOD_NAMES) > 10_000:
            _GOOD_NAMES.clear()
        _GOOD_NAMES.add(value)
    return value


#: Names that passed :func:`check_name` (bounded): a tenant seen again costs a set lookup.
_GOOD_NAMES: set[str] = set()


def check_count(field: str, value: Any) -> int:
    """A token count: a non-negative int (never a bool), else :class:`RequestError` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(field, f"must be a whole number of tokens, not {type(value).__name__} ({value!r})")
    if value < 0:
        raise RequestError(field, f"must not be negative ({value})")
    return value


#: Longest ``request_id`` a caller may pass: the ledger derives per-attempt ids from it (a suffix of up to
#: ~20 characters) and its ids are at most 256 characters.
MAX_REQUEST_ID_CHARS = 200
_REQUEST_ID_RE = re.compile(r"^[!-z|~]+\Z")


def check_request_id(value: Any) -> str:
    """A caller's ``request_id``: a str (or int) of 1-200 printable ASCII characters without spaces or braces,
    else :class:`RequestError` naming ``request_id`` and the limit."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RequestError("request_id", f"must be a string, not {type(value).__name__} ({value!r})")
    text = str(value)
    if not text:
        raise RequestError("request_id", "must not be empty (leave it out for a generated id)")
    if len(text) > MAX_REQUEST_ID_CHARS:
        raise RequestError("request_id", f"is {len(text)} characters long; at most {MAX_REQUEST_ID_CHARS} are allowed")
    if not _REQUEST_ID_RE.match(text):
        raise RequestError("request_id", f"{text!r}: use printable ASCII characters without spaces or braces")
    return text


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def _text_chars(value: Any) -> tuple[int, int]:
    """(characters of text, number of media parts) in a message's content."""
    if value is None:
        return 0, 0
    if isinstance(value, str):
        return len(value), 0
    if isinstance(value, Mapping):
        kind = value.get("type")
        if kind in (None, "text") and isinstance(value.get("text"), str):
            return len(value["text"]), 0
        if kind in ("image_url", "image", "input_audio", "audio", "file", "video", "document", "input_image"):
            return 0, 1
        return len(json.dumps(value, default=str)), 0
    if isinstance(value, Sequence):
        chars = media = 0
        for part in value:
            c, m = _text_chars(part)
            chars += c
            media += m
        return chars, media
    return len(str(value)), 0


def estimate_prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Estimated prompt tokens of chat ``messages``: ceil(chars / 4) per message + 4 per message + 3.

    Tool calls and tool results count as their JSON text; each image / audio / file part counts 258 tokens.
    """
    total = REPLY_OVERHEAD_TOKENS if messages else 0
    for message in messages:
        chars, media = _text_chars(message.get("content"))
        for key in ("tool_calls", "function_call"):
            if message.get(key):
                chars += len(json.dumps(message[key], default=str))
        name = message.get("name")
        if isinstance(name, str):
            chars += len(name)
        total += MESSAGE_OVERHEAD_TOKENS + (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN + media * MEDIA_PART_TOKENS
    return total


_PLAIN_KEYS = frozenset({"role", "content"})


def plain_text_tokens(messages: Sequence[Mapping[str, Any]]) -> int | None:
    """:func:`estimate_prompt_tokens` of ``messages`` when every message is a plain dict of ``role`` and a
    string ``content`` (nothing else: no parts, tool calls, names or cache marks), else None. Such a
    request needs no capability and marks nothing for prompt caching, so one pass says all three."""
    total = REPLY_OVERHEAD_TOKENS if messages else 0
    for message in messages:
        if type(message) is not dict or not message.keys() <= _PLAIN_KEYS:
            return None
        content = message.get("content")
        if type(content) is not str:
            return None
        total += MESSAGE_OVERHEAD_TOKENS + (len(content) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN
    return total


def _parts(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, Sequence) and not isinstance(content, str):
            out.extend(p for p in content if isinstance(p, Mapping))
    return out


@dataclass(frozen=True)
class RequestFeatures:
    """The attributes of one request that a policy can look at."""

    tenant: str | None = None
    app: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    task: str | None = None
    prompt_tokens: int = 0
    max_tokens: int = 1024
    grounding: str | None = None
    latency_sensitive: bool = False
    required_capabilities: frozenset[str] = frozenset()
    at: dt.date = field(default_factory=_utc_today)

    def __post_init__(self) -> None:
        if self.grounding is True:  # type: ignore[comparison-overlap]
            object.__setattr__(self, "grounding", "google_search")
        # type(...) is int / str / dict: the common case without a call per check (bool is not int here)
        if type(self.prompt_tokens) is not int or self.prompt_tokens < 0:
            check_count("prompt_tokens", self.prompt_tokens)
        if type(self.max_tokens) is not int or self.max_tokens < 0:
            check_count("max_tokens", self.max_tokens)
        if self.tenant is not None and (type(self.tenant) is not str or self.tenant not in _GOOD_NAMES):
            check_name("tenant", self.tenant)
        if self.app is not None and (type(self.app) is not str or self.app not in _GOOD_NAMES):
            check_name("app", self.app)
        tags = self.tags
        if tags is None:
            object.__setattr__(self, "tags", {})
        elif type(tags) is not dict or tags:
            if not isinstance(tags, Mapping):
                raise RequestError("tags", f"must be a dict of tag name to value, not {type(tags).__name__}")
            for key, value in tags.items():
                check_name("tags", key, "a tag name")
                check_name(f"tags[{key!r}]", value)
        if type(self.required_capabilities) is not frozenset:
            object.__setattr__(self, "required_capabilities", frozenset(self.required_capabilities))

    @staticmethod
    def capabilities_from(messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> frozenset[str]:
        """Capabilities a request needs: image parts -> vision, input_audio -> audio, tools -> tools,
        a JSON ``response_format`` -> json_output, a PDF file part -> pdf."""
        caps: set[str] = set()
        for part in _parts(messages):
            kind = part.get("type")
            if kind in ("image_url", "image", "input_image"):
                caps.add("vision")
            elif kind in ("input_audio", "audio"):
                caps.add("audio")
            elif kind in ("video",):
                caps.add("video")
            elif kind in ("file", "document"):
                blob = json.dumps(part, default=str)
                caps.add("pdf" if "pdf" in blob.lower() else "vision")
        if params.get("tools") or params.get("functions"):
            caps.add("tools")
        fmt = params.get("response_format")
        if fmt:
            kind = fmt.get("type") if isinstance(fmt, Mapping) else getattr(fmt, "type", None) or fmt
            if kind in ("json_object", "json_schema", "json") or isinstance(fmt, type):
                caps.add("json_output")
        return frozenset(caps)


@dataclass(frozen=True)
class RampState:
    """Priority PayGo tokens used in the last minute by a family, and the family's current ramp limit."""

    tokens_last_minute: int
    limit_tpm: int


class StateSnapshot:
    """Ledger state the engine decides on: spend per budget, grounding pool use, priority ramp use.

    ``spend`` keys are ``BudgetScope.id`` (``tenant:acme|calendar:month@UTC``) or a bare scope
    (``tenant:acme``, applying to every window of that scope); ``pools`` maps pool id to units used this
    period; ``ramp`` maps a ramp family to ``(tokens_last_minute, limit_tpm)`` (or a :class:`RampState`);
    ``pt`` maps a Provisioned Throughput key ``MODEL@REGION`` to the burndown-adjusted tokens in its
    current 30 s window.
    """

    __slots__ = ("spend", "pools", "ramp", "now", "pt")

    def __init__(
        self,
        spend: Mapping[str, Decimal | int | str] | None = None,
        pools: Mapping[str, int] | None = None,
        ramp: Mapping[str, Any] | None = None,
        now: dt.datetime | None = None,
        pt: Mapping[str, int] | None = None,
    ) -> None:
        self.pt: dict[str, int] = {k: int(v) for k, v in (pt or {}).items()}
        #: When the state was read (spend pacing measures elapsed window time from it); None: now.
        self.now = now
        self.spend: dict[str, Decimal] = {k: v if isinstance(v, Decimal) else Decimal(str(v)) for k, v in (spend or {}).items()}
        self.pools: dict[str, int] = {k: int(v) for k, v in (pools or {}).items()}
        ramps: dict[str, RampState] = {}
        for family, value in (ramp or {}).items():
            if isinstance(value, RampState):
                ramps[family] = value
            elif hasattr(value, "tokens_last_minute"):
                ramps[family] = RampState(int(value.tokens_last_minute), int(value.limit_tpm))
            else:
                used, limit = value
                ramps[family] = RampState(int(used), int(limit))
        self.ramp = ramps

    @classmethod
    def empty(cls) -> "StateSnapshot":
        return cls()

    @classmethod
    def from_ledger(cls, snapshot: Any, budgets: Sequence[Any] = ()) -> "StateSnapshot":
        """From a :class:`router.ledger.types.LedgerSnapshot` (spend by scope id, pools, ramp)."""
        if type(snapshot) is LedgerSnapshot and not snapshot.ramp and not snapshot.pools:
            # The request path (no grounding pool, no ramp family): no conversions to make.
            spend = dict(snapshot.spend)
            for value in spend.values():
                if type(value) is not Decimal:
                    spend = {k: v if isinstance(v, Decimal) else Decimal(str(v)) for k, v in spend.items()}
                    break
            for budget in budgets:
                if budget.id not in spend:
                    spend[budget.id] = _ZERO
            state = cls.__new__(cls)
            state.spend, state.pools, state.ramp = spend, {}, {}
            state.now = dt.datetime.now(dt.timezone.utc)
            pt = getattr(snapshot, "pt", None)
            state.pt = {k: int(v) for k, v in pt.items()} if pt else {}
            return state
        spend = dict(getattr(snapshot, "spend", {}) or {})
        for budget in budgets:
            spend.setdefault(budget.id, Decimal(0))
        pools = {pid: usage.used for pid, usage in (getattr(snapshot, "pools", {}) or {}).items()}
        return cls(spend, pools, dict(getattr(snapshot, "ramp", {}) or {}), now=dt.datetime.now(dt.timezone.utc), pt=getattr(snapshot, "pt", None))

    def spend_for(self, scope_id: str, scope: str) -> Decimal:
        found = self.spend.get(scope_id)
        if found is None:
            found = self.spend.get(scope)
        return found if found is not None else Decimal(0)

    def ramp_for(self, family: str) -> RampState:
        found = self.ramp.get(family)
        if found is None:
            return RampState(0, RAMP_START_TPM.get(family, 1_000_000))
        return found

    def __repr__(self) -> str:
        return f"StateSnapshot(spend={self.spend!r}, pools={self.pools!r}, ramp={self.ramp!r}, pt={self.pt!r})"


__all__ = [
    "CHARS_PER_TOKEN",
    "RAMP_START_TPM",
    "RampState",
    "RequestFeatures",
    "StateSnapshot",
    "estimate_prompt_tokens",
]
