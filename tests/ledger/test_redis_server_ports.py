"""router.testing's throwaway Redis: a Cluster node's bus port (PORT + 10000) must be free too."""

from __future__ import annotations

import random
import socket

from router.testing import redis_server
from router.testing.redis_server import CLUSTER_BUS_OFFSET, free_port


def test_cluster_port_skips_a_port_whose_bus_port_is_taken(monkeypatch):
    node_port = free_port(cluster_bus=True)
    other = free_port(cluster_bus=True)
    while other == node_port:
        other = free_port(cluster_bus=True)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", node_port + CLUSTER_BUS_OFFSET))  # someone holds node_port's bus port
        busy.listen()
        picks = iter([node_port, other])
        monkeypatch.setattr(random, "randint", lambda a, b: next(picks))
        chosen = free_port(cluster_bus=True)
    assert chosen == other  # node_port itself was free, but its bus port was not


def test_cluster_port_leaves_room_for_the_bus_port():
    for _ in range(20):
        assert free_port(cluster_bus=True) + CLUSTER_BUS_OFFSET <= 65535


def test_a_node_that_cannot_start_is_retried_on_another_port(monkeypatch):
    calls = []

    class Flaky:
        def __init__(self, **kwargs):
            calls.append(kwargs["port"])
            if len(calls) == 1:
                raise RuntimeError("redis-server exited with 1: Address already in use")

    monkeypatch.setattr(redis_server, "RedisServer", Flaky)
    node = redis_server.RedisClusterServers._node(0, None)
    assert isinstance(node, Flaky) and len(calls) == 2
