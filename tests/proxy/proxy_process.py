"""Start a real LiteLLM proxy process on loopback with the router plugin loaded from its config (shared by the
proxy test modules)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

#: The two documented lines.
CONFIG = """\
litellm_settings:
  callbacks: ["router.integrations.litellm_proxy.handler"]
"""


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


@contextmanager
def running_proxy(tmp_path: Path, config: str, policy: str, redis_server: Any, stub: Any, master_key: str) -> Iterator[dict[str, Any]]:
    """A proxy serving ``config`` with ``ROUTER_POLICY`` = ``policy`` (text), the ledger on ``redis_server``
    under a fresh prefix and Vertex AI at ``stub``; yields its url, prefix, redis, stub and log path."""
    reason = _proxy_missing()
    if reason:  # the dev extra installs the proxy's packages: their absence is a broken install, not a skip
        pytest.fail(reason)
    import httpx

    from router.testing.credentials import write_service_account

    if not redis_server.ping():
        redis_server.start()
    prefix = "proxy" + uuid.uuid4().hex[:10]
    (tmp_path / "policy.yaml").write_text(policy, encoding="utf-8")
    (tmp_path / "config.yaml").write_text(config, encoding="utf-8")
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
        "LITELLM_MASTER_KEY": master_key,
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
        deadline = time.monotonic() + 180  # a loaded 2-core CI machine can take a while to import the proxy
        while True:
            if process.poll() is not None:
                pytest.fail(f"the proxy exited with {process.returncode}:\n{log_path.read_text(errors='replace')[-4000:]}")
            try:
                if httpx.get(f"{base}/health/liveliness", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the proxy did not start in 180 s:\n{log_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.25)
        yield {"url": base, "prefix": prefix, "redis": redis_server, "stub": stub, "log": log_path}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)




async def ledger_spend(proxy: dict[str, Any], scope: str, *, with_holds: bool = False) -> Decimal:
    """Settled spend of ``scope`` this month in the proxy's ledger (``with_holds``: plus active reservations)."""
    from router.ledger import BudgetScope, Window, store_from_url

    store = store_from_url(proxy["redis"].url, prefix=proxy["prefix"])
    budget = BudgetScope(scope, Window.parse("calendar:month@UTC"), Decimal("10"))
    try:
        if with_holds:
            return (await store.snapshot([budget], (), ())).spend.get(budget.id, Decimal(0))
        return await store.spend(budget)
    finally:
        await store.close()
