"""Shared policies: published to the ledger (Redis), every Router with policy="store:NAME" switches together;
a broken version is refused at publish time; re-publishing an earlier version rolls back."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from router.cli import get_app
from router.errors import PolicyError

pytestmark = [pytest.mark.litellm, pytest.mark.redis_server]
HELLO = [{"role": "user", "content": "hello"}]


def _policy(model: str) -> str:
    return f"version: 1\ncandidates: [{{model: {model}}}]\nprofiles: {{p: {{objective: cheapest}}}}\ndefault_profile: p\n"


def _publish(tmp_path: Path, url: str, prefix: str, text: str | None = None, version: str | None = None):
    args = ["policy", "publish", "--store", url, "--prefix", prefix, "--name", "main", "--json"]
    if text is not None:
        path = tmp_path / f"p-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(text)
        args.insert(2, str(path))
    if version is not None:
        args += ["--version", version]
    return CliRunner().invoke(get_app(), args)


def test_every_router_switches_to_a_published_version(stub_router, vertex_stub, redis_server, tmp_path):
    prefix = f"sp{uuid.uuid4().hex[:8]}"
    first = _publish(tmp_path, redis_server.url, prefix, _policy("gemini-2.5-flash-lite"))
    assert first.exit_code == 0, first.output
    v1 = json.loads(first.stdout)["version"]
    routers = [stub_router("store:main", store=redis_server.url, key_prefix=prefix, watch_interval_s=0.2) for _ in range(2)]

    def models() -> list[str]:
        return [r.complete(HELLO, max_tokens=20).routing.model for r in routers]

    assert models() == ["gemini-2.5-flash-lite"] * 2
    assert all(r.policy_version == v1 for r in routers)
    second = _publish(tmp_path, redis_server.url, prefix, _policy("gemini-2.5-flash"))
    v2 = json.loads(second.stdout)["version"]
    time.sleep(0.3)
    assert models() == ["gemini-2.5-flash"] * 2
    assert all(r.policy_version == v2 for r in routers)
    # A broken policy never reaches the ledger.
    broken = _publish(tmp_path, redis_server.url, prefix, _policy("gemini-2.5-flash") + "oops: [\n")
    assert broken.exit_code == 2
    # Roll back by re-publishing v1.
    back = _publish(tmp_path, redis_server.url, prefix, version=v1)
    assert back.exit_code == 0, back.output
    time.sleep(0.3)
    assert models() == ["gemini-2.5-flash-lite"] * 2
    history = CliRunner().invoke(get_app(), ["policy", "history", "--store", redis_server.url, "--prefix", prefix, "--name", "main", "--json"])
    assert [row["version"] for row in json.loads(history.stdout)["versions"]] == [v1, v2, v1]


def test_a_router_on_an_unpublished_name_says_how_to_publish(stub_router, redis_server):
    r = stub_router("store:nothing-here", store=redis_server.url, key_prefix=f"sp{uuid.uuid4().hex[:8]}")
    with pytest.raises(PolicyError) as info:
        r.complete(HELLO, max_tokens=20)
    assert "router policy publish" in str(info.value)


async def test_the_memory_store_shares_policies_within_a_process():
    from router.ledger import MemoryStore

    store = MemoryStore()
    assert await store.publish_policy("main", "0123456789ab", "version: 1") is True
    assert await store.publish_policy("main", "0123456789ab", "version: 1") is False
    assert await store.policy_version("main") == "0123456789ab"
    assert await store.policy_text("main", "0123456789ab") == "version: 1"
    assert [v for v, _ in await store.policy_history("main")] == ["0123456789ab"]
    with pytest.raises(ValueError):
        await store.publish_policy("main}:x", "0123456789ab", "")
