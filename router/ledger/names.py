"""Caller-supplied names in ledger scopes: a reversible (hence injective) encoding.

Caller-supplied names (tenant, app, tag keys and values) are *encoded*, never sanitised: letters, digits and
``_ . - ~ @`` stay as they are, every other character becomes ``%XX`` per UTF-8 byte (upper-case hex), and
``%`` itself is always encoded. The encoding is reversible (:func:`decode_name`), so it is injective: two
different names never produce the same scope (``a/b`` -> ``a%2Fb``, while a tenant literally named
``a%2Fb`` becomes ``a%252Fb``). Key separators (``: | =``) and hash-tag braces never survive encoding.
A name must be a non-empty string of at most :data:`MAX_NAME_CHARS` characters (an empty tenant is refused,
not a tenant called "").
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import quote, unquote

#: Longest caller-supplied name (tenant, app, tag key or value), in characters before encoding.
MAX_NAME_CHARS = 128
#: Characters a name keeps as is when encoded (plus ``A-Z a-z 0-9``); everything else becomes ``%XX``.
NAME_SAFE = "_.-~@"
_ENCODED_RE = re.compile(r"^(?:[A-Za-z0-9_.~@\-]|%[0-9A-F]{2})+\Z")


def encode_name(name: str, what: str = "name") -> str:
    """The reversible key form of a caller-supplied name (see the module docstring); raises ``ValueError``
    for an empty or too long name, ``TypeError`` for a non-string (``what`` names the field in messages)."""
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a string, not {type(name).__name__} ({name!r})")
    if not name:
        raise ValueError(f"{what} must not be empty (pass None for none)")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"{what} is {len(name)} characters long; at most {MAX_NAME_CHARS} are allowed")
    try:
        return quote(name, safe="@", encoding="utf-8", errors="strict")
    except UnicodeEncodeError:
        raise ValueError(f"{what} {name!r} is not valid Unicode text (lone surrogate)") from None


def decode_name(encoded: str) -> str:
    """The name :func:`encode_name` encoded (raises ``ValueError`` if ``encoded`` is not its canonical form)."""
    if not isinstance(encoded, str) or not _ENCODED_RE.match(encoded):
        raise ValueError(f"{encoded!r} is not an encoded name")
    try:
        name = unquote(encoded, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise ValueError(f"{encoded!r} is not an encoded name (invalid UTF-8)") from None
    if not name or len(name) > MAX_NAME_CHARS or quote(name, safe="@") != encoded:
        raise ValueError(f"{encoded!r} is not the canonical encoding of a name (use encode_name)")
    return name


def scope_of(kind: str, name: str | None = None, key: str | None = None) -> str:
    """The budget scope string of a name: ``global``, ``tenant:ENC``, ``app:ENC`` or ``tag:ENC(key)=ENC(name)``."""
    if kind == "global":
        return "global"
    if kind in ("tenant", "app"):
        return f"{kind}:{encode_name(name, kind)}"  # type: ignore[arg-type]
    if kind == "tag":
        return f"tag:{encode_name(key, 'tag key')}={encode_name(name, f'tag {key!r}')}"  # type: ignore[arg-type]
    raise ValueError(f"unknown scope kind {kind!r}: global, tenant, app or tag")


@lru_cache(maxsize=4096)
def check_scope(scope: str) -> str:
    """Validate a scope string: ``global`` or kind and name(s) in canonical encoded form."""
    if not isinstance(scope, str):
        raise TypeError(f"a budget scope must be a string, not {type(scope).__name__}")
    kind, sep, rest = scope.partition(":")
    ok = False
    if scope == "global":
        ok = True
    elif sep and kind in ("tenant", "app"):
        ok = _canonical(rest)
    elif sep and kind == "tag":
        key, eq, value = rest.partition("=")
        ok = bool(eq) and _canonical(key) and _canonical(value)
    if not ok:
        raise ValueError(
            f"invalid budget scope {scope!r}: use global, tenant:NAME, app:NAME or tag:KEY=VALUE with each name "
            "encoded by router.ledger.keys.encode_name (letters, digits, _ . - ~ @ as is, anything else as %XX)"
        )
    return scope


def _canonical(encoded: str) -> bool:
    try:
        decode_name(encoded)
    except ValueError:
        return False
    return True


def scope_forms(text: str) -> set[str]:
    """A scope or budget id typed by a person (CLI), as typed and with its name(s) encoded the ledger's way:
    ``tenant:a/b`` -> ``{tenant:a/b, tenant:a%2Fb}``, with or without a ``|window`` suffix."""
    forms = {text}
    head, bar, window = text.rpartition("|") if "|" in text else (text, "", "")
    kind, sep, rest = head.partition(":")
    try:
        if sep and kind in ("tenant", "app"):
            forms.add(scope_of(kind, rest) + bar + window)
        elif sep and kind == "tag" and "=" in rest:
            key, _, value = rest.partition("=")
            forms.add(scope_of("tag", value, key) + bar + window)
    except (TypeError, ValueError):
        pass
    return forms
