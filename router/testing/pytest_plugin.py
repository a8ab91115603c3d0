"""pytest plugin: fixtures wiring litellm (and a Router) to the loopback Vertex stub.

Enable it in your ``conftest.py``::

    pytest_plugins = ["router.testing.pytest_plugin"]

Fixtures:

- ``vertex_stub``: the :class:`~router.testing.vertex_stub.VertexStub` (one server per session, scripts
  and request log reset before and after each test). Script it: ``vertex_stub.script("gemini", ...)``.
- ``vertex_settings``: ``VertexSettings`` pointing at the stub, with a generated service account
  whose token endpoint is the stub's (so no network and no real credentials).
- ``vertex_router_kwargs``: the same as keyword arguments for ``Router(policy, **vertex_router_kwargs)``.
- ``stub_router``: a factory ``stub_router(policy, **kwargs) -> Router`` wired to the stub (memory
  store unless ``store=`` is given); every Router made is closed at teardown.

The plugin sets ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (unless already set) so that litellm never fetches
its cost map at import.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from router.testing.vertex_stub import VertexStub, vertex_settings_for

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "litellm: goes through litellm's real Vertex code against the loopback stub")


@pytest.fixture(scope="session")
def vertex_stub_server() -> Iterator[VertexStub]:
    """The session's stub server (prefer ``vertex_stub``, which also resets it around each test)."""
    stub = VertexStub().start()
    try:
        yield stub
    finally:
        stub.stop()


@pytest.fixture(scope="session")
def vertex_stub_session_settings(vertex_stub_server: VertexStub, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One credentials file for the session: litellm caches the token per credentials, so calls are fast."""
    return vertex_settings_for(vertex_stub_server, tmp_path_factory.mktemp("vertex-stub-credentials"))


@pytest.fixture
def vertex_stub(vertex_stub_server: VertexStub) -> Iterator[VertexStub]:
    """The loopback Vertex stub with no scripts and an empty request log."""
    vertex_stub_server.reset()
    try:
        yield vertex_stub_server
    finally:
        vertex_stub_server.reset()


@pytest.fixture
def vertex_settings(vertex_stub: VertexStub, vertex_stub_session_settings: Any) -> Any:
    """``VertexSettings`` wired to ``vertex_stub`` (project ``router-stub-project``, location us-central1)."""
    return vertex_stub_session_settings


@pytest.fixture
def vertex_router_kwargs(vertex_settings: Any) -> dict[str, Any]:
    """``vertex_project``, ``vertex_location``, ``vertex_credentials``, ``api_base`` for ``Router(...)``."""
    return {
        "vertex_project": vertex_settings.vertex_project,
        "vertex_location": vertex_settings.vertex_location,
        "vertex_credentials": vertex_settings.vertex_credentials,
        "api_base": vertex_settings.api_base,
    }


@pytest.fixture
def stub_router(vertex_router_kwargs: dict[str, Any]) -> Iterator[Callable[..., Any]]:
    """Factory: ``stub_router(policy, **kwargs)`` -> a ``Router`` calling the stub through litellm."""
    from router import Router

    made: list[Any] = []

    def make(policy: Any, **kwargs: Any) -> Any:
        options = {**vertex_router_kwargs, "store": "memory://", **kwargs}
        router = Router(policy, **options)
        made.append(router)
        return router

    try:
        yield make
    finally:
        for router in made:
            try:
                router.close()
            except Exception:  # noqa: BLE001 - teardown must close every router
                pass
