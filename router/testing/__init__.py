"""Test helpers for applications using the router: a loopback Vertex AI stub that litellm's real
Vertex code talks to, generated service-account credentials, an in-process mock transport, and pytest
fixtures (``pytest_plugins = ["router.testing.pytest_plugin"]``).

Nothing here imports litellm; names are loaded on first use.
"""

from __future__ import annotations

from router._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "VertexStub": "router.testing.vertex_stub",
    "CountScript": "router.testing.vertex_stub",
    "ModelScript": "router.testing.vertex_stub",
    "ProvisionedScript": "router.testing.vertex_stub",
    "StubRequest": "router.testing.vertex_stub",
    "vertex_settings_for": "router.testing.vertex_stub",
    "make_service_account": "router.testing.credentials",
    "write_service_account": "router.testing.credentials",
    "MockTransport": "router._transport",
    "ProviderUsage": "router._transport",
    "AttemptFailed": "router._transport",
    "VertexSettings": "router._transport",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports('router.testing', globals(), _EXPORTS)
