"""Read a provider object's attributes exactly as ``getattr(obj, name, None)`` does, without its cost on
litellm's pydantic models.

litellm's ``ModelResponse`` / ``Usage`` are pydantic v2 models. A name that is not a set field (the
response's ``usage``, an extra; its ``_hidden_params``, a private attribute; an absent
``vertex_ai_grounding_metadata`` or ``reasoning_tokens``) goes through pydantic's ``__getattr__``, which
asks the metaclass and raises and catches AttributeErrors on the way: 3-4 Python calls and up to two
exceptions per name, on every served call. :func:`attributes` answers those names from the model's own
storage with pydantic's rules (``BaseModel.__getattr__``: a private attribute from
``__pydantic_private__``, else an extra from ``__pydantic_extra__``, else absent) for a class that keeps
pydantic's ``__getattr__``, the default ``__getattribute__`` and defines none of the names (no property,
descriptor or class attribute of that name anywhere in its MRO); any other object or name goes through
``getattr``. What a class is, and which names it answers, is worked out once per class.
``is_mapping`` is ``isinstance(obj, Mapping)``, remembered per class (no ABC check per call).
tests/transport/test_attrs.py compares both with ``getattr`` / ``isinstance`` on litellm's real objects.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

_MAPPING, _MODEL, _OTHER = 0, 1, 2
#: How each name of a read is answered on a pydantic model class.
_STORED, _PRIVATE, _GETATTR = 0, 1, 2
_KINDS: dict[type, int] = {}
_PLANS: dict[tuple[type, tuple[str, ...]], tuple[int, ...]] = {}
_EMPTY: dict[str, Any] = {}


def _classify(cls: type) -> int:
    if issubclass(cls, Mapping):
        return _MAPPING
    pydantic = sys.modules.get("pydantic")  # not imported: no object can be a pydantic model
    base = getattr(pydantic, "BaseModel", None) if pydantic is not None else None
    if (
        base is not None
        and issubclass(cls, base)
        and getattr(base, "__getattr__", None) is not None
        and cls.__getattr__ is base.__getattr__  # type: ignore[attr-defined]
        and cls.__getattribute__ is object.__getattribute__
    ):
        return _MODEL
    return _OTHER


def _kind(cls: type) -> int:
    found = _KINDS.get(cls)
    if found is None:
        if len(_KINDS) > 256:  # bounded: a handful of response classes in practice
            _KINDS.clear()
        found = _KINDS[cls] = _classify(cls)
    return found


def is_mapping(obj: object) -> bool:
    """``isinstance(obj, collections.abc.Mapping)``, remembered per class."""
    cls = type(obj)
    found = _KINDS.get(cls)
    if found is None:
        found = _kind(cls)
    return found == _MAPPING


def _plan(cls: type, names: tuple[str, ...]) -> tuple[int, ...]:
    defined: set[str] = set()
    for klass in cls.__mro__:
        defined.update(vars(klass))
    private = getattr(cls, "__private_attributes__", None) or {}
    plan = []
    for name in names:
        if name in defined:
            plan.append(_GETATTR)  # a class attribute, property or descriptor: Python's own lookup
        elif name in private:
            plan.append(_GETATTR if hasattr(private[name], "__get__") else _PRIVATE)
        else:
            plan.append(_STORED)
    return tuple(plan)


def attributes(obj: object, names: tuple[str, ...]) -> Sequence[Any]:
    """``[getattr(obj, name, None) for name in names]``, for any object (a mapping's keys are not read)."""
    cls = type(obj)
    kind = _KINDS.get(cls)
    if kind is None:
        kind = _kind(cls)
    if kind != _MODEL:
        return [getattr(obj, name, None) for name in names]
    key = (cls, names)
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) > 256:
            _PLANS.clear()
        plan = _PLANS[key] = _plan(cls, names)
    stored = obj.__dict__
    extra: dict[str, Any] | None = None
    out: list[Any] = []
    for name, how in zip(names, plan):
        if how == _STORED:
            if name in stored:
                out.append(stored[name])
                continue
            if extra is None:
                extra = getattr(obj, "__pydantic_extra__", None) or _EMPTY
            out.append(extra[name] if name in extra else None)
        elif how == _PRIVATE:
            private = getattr(obj, "__pydantic_private__", None)
            if private is None:  # pydantic itself would raise here: let it
                out.append(getattr(obj, name, None))
            else:
                out.append(private[name] if name in private else None)
        else:
            out.append(getattr(obj, name, None))
    return out


def fields(obj: object, names: tuple[str, ...], empty: tuple[None, ...]) -> Sequence[Any]:
    """Each name read as usage.py's ``_get`` does: ``empty`` for None, a mapping's ``.get(name)``, else
    :func:`attributes`."""
    if obj is None:
        return empty
    if is_mapping(obj):
        return [obj.get(name) for name in names]  # type: ignore[attr-defined]
    return attributes(obj, names)


__all__ = ["attributes", "fields", "is_mapping"]
