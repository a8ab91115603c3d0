"""The module-level ``router.complete()`` / ``acomplete()``: a default Router configured from the environment.

``ROUTER_POLICY`` (required: a policy YAML path), ``ROUTER_STORE`` (default ``memory://``),
``ROUTER_CATALOG`` (default: the bundled catalog), ``ROUTER_REQUEST_LOG`` (optional: a request log for
``router replay``), plus the usual ``VERTEXAI_*`` settings.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from router.errors import RouterError

_lock = threading.Lock()
_default: Any = None


def default_router() -> Any:
    """The process-wide Router built from ``ROUTER_POLICY`` / ``ROUTER_STORE`` / ``ROUTER_CATALOG``."""
    global _default
    with _lock:
        if _default is None:
            from router._client import Router

            policy = os.environ.get("ROUTER_POLICY")
            if not policy:
                raise RouterError("ROUTER_POLICY is not set: point it at a policy YAML file (see policies/)")
            _default = Router(
                policy=policy,
                catalog=os.environ.get("ROUTER_CATALOG") or None,
                store=os.environ.get("ROUTER_STORE", "memory://"),
                request_log=os.environ.get("ROUTER_REQUEST_LOG") or None,
            )
        return _default


def reset_default_router() -> None:
    """Forget the default Router (the next call rebuilds it from the environment)."""
    global _default
    with _lock:
        _default = None


def complete(messages: Sequence[Mapping[str, Any]], **kwargs: Any) -> Any:
    """Route one chat completion with the default Router (see :meth:`Router.complete`)."""
    return default_router().complete(messages, **kwargs)


async def acomplete(messages: Sequence[Mapping[str, Any]], **kwargs: Any) -> Any:
    """Async :func:`complete` with the default Router (see :meth:`Router.acomplete`)."""
    return await default_router().acomplete(messages, **kwargs)
