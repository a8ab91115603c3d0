"""The LiteLLM proxy plugin, end to end: a real ``litellm`` proxy process on loopback loads
``router.integrations.litellm_proxy.handler`` from its config (the two documented lines, no model
list), routes to the loopback Vertex stub, and settles the exact bill in a real Redis ledger."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.litellm, pytest.mark.redis_server]

from tests.proxy.policy import POLICY as _POLICY

POLICY = _POLICY.replace("LIMIT", "10")

CONFIG = """\
litellm_settings:
  callbacks: ["router.integrations.litellm_proxy.handler"]
"""
#: The same two lines in a proxy that already serves a model list of its own.
CONFIG_WITH_MODEL_LIST = CONFIG + """\
model_list:
  - model_name: other-model
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: sk-unused
      api_base: http://127.0.0.1:9
"""

MASTER_KEY = "sk-router-proxy-test-" + uuid.uuid4().hex


def _proxy_missing() -> str | None:
    """Why the proxy cannot run here (its extra dependencies are missing), or None."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        return f"litellm proxy dependencies missing: {exc}"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _litellm_cli() -> list[str]:
    script = Path(sys.executable).with_name("litellm")
    if script.exists():
        return [str(script)]
    found = shutil.which("litellm")
    if found:
        return [found]
    return [sys.executable, "-m", "litellm.proxy.proxy_cli"]


@pytest.fixture(params=[CONFIG, CONFIG_WITH_MODEL_LIST], ids=["two-lines", "with-model-list"])
def proxy(request, tmp_path, redis_server, vertex_stub_server):
    reason = _proxy_missing()
    if reason:  # the dev extra installs the proxy's packages: their absence is a broken install, not a skip
        pytest.fail(reason)
    import httpx

    from router.testing.credentials import write_service_account

    stub = vertex_stub_server
    if not redis_server.ping():
        redis_server.start()
    prefix = "proxy" + uuid.uuid4().hex[:10]
    (tmp_path / "policy.yaml").write_text(POLICY, encoding="utf-8")
    (tmp_path / "config.yaml").write_text(request.param, encoding="utf-8")
    creds = write_service_account(tmp_path / "sa.json", stub.token_uri, "router-stub-project")
    port = _free_port()
    env = {
        **os.environ,
        "ROUTER_POLICY": str(tmp_path / "policy.yaml"),
        "ROUTER_STORE": redis_server.url,
        "ROUTER_KEY_PREFIX": prefix,
        "VERTEXAI_PROJECT": "router-stub-project",
        "VERTEXAI_LOCATION": "us-central1",
        "VERTEXAI_CREDENTIALS": str(creds),
        "VERTEXAI_API_BASE": stub.url,
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_EVENT_LOOP": "asyncio",  # no uvloop needed
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("ROUTER_CATALOG", None)
    log_path = tmp_path / "proxy.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*_litellm_cli(), "--config", str(tmp_path / "config.yaml"), "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"the proxy exited with {process.returncode}:\n{log_path.read_text(errors='replace')[-4000:]}")
            try:
                if httpx.get(f"{base}/health/liveliness", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the proxy did not start in 30 s:\n{log_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.25)
        yield {"url": base, "prefix": prefix, "redis": redis_server, "stub": stub, "log": log_path}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture
def vertex_stub_server():
    from router.testing.vertex_stub import VertexStub

    with VertexStub() as stub:
        yield stub


async def _spend(url: str, prefix: str, scope: str, *, with_holds: bool = False) -> Decimal:
    """Settled spend of ``scope`` this month (``with_holds``: plus active reservations)."""
    from router.ledger import BudgetScope, Window, store_from_url

    store = store_from_url(url, prefix=prefix)
    budget = BudgetScope(scope, Window.parse("calendar:month@UTC"), Decimal("10"))
    try:
        if with_holds:
            return (await store.snapshot([budget], (), ())).spend.get(budget.id, Decimal(0))
        return await store.spend(budget)
    finally:
        await store.close()


async def test_proxy_routes_reserves_and_settles(proxy):
    import httpx

    stub = proxy["stub"]
    stub.script("gemini-2.5-flash", usage={"input_tokens": 1200, "output_tokens": 80}, traffic_type="ON_DEMAND")
    body = {
        "model": "router",
        "messages": [{"role": "user", "content": "Say hello to the proxy."}],
        "max_tokens": 256,
        "user": "acme",
        "metadata": {"app": "proxy-test"},
    }
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{proxy['url']}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert response.status_code == 200, f"{response.status_code} {response.text}\n{proxy['log'].read_text(errors='replace')[-3000:]}"
    payload = response.json()
    assert payload["choices"][0]["message"]["content"]
    assert payload["usage"]["prompt_tokens"] == 1200

    # The policy's rule for tenant acme chose gemini-2.5-flash-lite, and that is what Vertex was asked for.
    calls = stub.model_requests()
    assert [c.model for c in calls] == ["gemini-2.5-flash-lite"], [(c.model, c.path) for c in calls]
    call = calls[0]
    assert call.api == "gemini" and call.project == "router-stub-project"
    config = call.body.get("generationConfig") or {}
    assert config.get("maxOutputTokens", config.get("max_output_tokens")) == 256, call.body  # the reserved bound

    # The ledger holds exactly our cost engine's bill for the stub's usage (settled after the response).
    expected = Decimal("0.000152")  # seed 000, Gemini 2.5 Flash-Lite: 1,200 x $0.1 + 80 x $0.4, per 1M
    spent = Decimal(0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spent = await _spend(proxy["redis"].url, proxy["prefix"], "tenant:acme")
        if spent:
            break
        time.sleep(0.1)
    assert spent == expected, proxy["log"].read_text(errors="replace")[-3000:]

    # A streamed call is settled from its final usage chunk.
    stub.script("gemini-2.5-flash-lite", usage={"input_tokens": 900, "output_tokens": 40}, traffic_type="ON_DEMAND")
    async with httpx.AsyncClient(timeout=30) as client:
        async with client.stream(
            "POST", f"{proxy['url']}/v1/chat/completions", json={**body, "stream": True}, headers={"Authorization": f"Bearer {MASTER_KEY}"}
        ) as streamed:
            assert streamed.status_code == 200
            lines = [line async for line in streamed.aiter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]" and len(lines) > 2
    assert stub.model_requests()[-1].stream and stub.model_requests()[-1].model == "gemini-2.5-flash-lite"
    second = Decimal("0.000106")  # 900 x $0.1 + 40 x $0.4, per 1M
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spent = await _spend(proxy["redis"].url, proxy["prefix"], "tenant:acme")
        if spent != expected:
            break
        time.sleep(0.1)
    assert spent == expected + second, proxy["log"].read_text(errors="replace")[-3000:]
    expected += second

    # Another tenant gets the default profile; a failed call is released, never billed.
    stub.script("gemini-2.5-flash", error="bad_request")
    body2 = {**body, "user": "globex"}
    async with httpx.AsyncClient(timeout=30) as client:
        failed = await client.post(f"{proxy['url']}/v1/chat/completions", json=body2, headers={"Authorization": f"Bearer {MASTER_KEY}"})
    assert failed.status_code == 400, failed.text
    assert stub.model_requests()[-1].model == "gemini-2.5-flash"
    held = Decimal(-1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the failure event releases the hold asynchronously
        held = await _spend(proxy["redis"].url, proxy["prefix"], "tenant:globex", with_holds=True)
        if held == 0:
            break
        time.sleep(0.1)
    assert held == 0
    assert await _spend(proxy["redis"].url, proxy["prefix"], "tenant:globex") == 0
    assert await _spend(proxy["redis"].url, proxy["prefix"], "tenant:acme") == expected
