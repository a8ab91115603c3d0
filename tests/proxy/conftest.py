"""Fixtures of the proxy tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def vertex_stub_server():
    """A loopback Vertex stub for the proxy process to call."""
    from router.testing.vertex_stub import VertexStub

    with VertexStub() as stub:
        yield stub
