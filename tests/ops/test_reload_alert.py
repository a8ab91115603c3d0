"""Issue 11 item 8: restoring the serving text after a broken edit clears ``router_policy_reload_failing``
(the watcher used to return early on the unchanged version and leave the alert at 1), both in a Router
and in the ``router metrics --policy`` exporter."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from router import Router
from router._reload import policy_version
from router.metrics import RouterMetrics

REPO = Path(__file__).resolve().parents[2]
VALID_A = (REPO / "policies" / "cost-first.yaml").read_text()
VALID_B = (REPO / "policies" / "quality-first.yaml").read_text()
BROKEN = VALID_B + "\nthis is: [not yaml\n"


def _write(path: Path, text: str) -> None:
    """Write ``text`` so that the file's mtime surely differs from the previous write."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    if path.stat().st_mtime_ns == before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def _failing(metrics: RouterMetrics) -> str:
    line = [x for x in metrics.render().decode().splitlines() if x.startswith("router_policy_reload_failing ")]
    return line[0].split()[1]


def test_router_alert_clears_when_the_serving_text_is_restored(tmp_path: Path):
    path = tmp_path / "policy.yaml"
    path.write_text(VALID_A)
    metrics = RouterMetrics()
    r = Router(str(path), watch_interval_s=0, metrics=metrics)
    try:
        _write(path, VALID_B)  # a valid edit
        serving = r.compiled
        version = r.policy_version
        assert _failing(metrics) == "0.0"
        _write(path, BROKEN)  # a broken edit: old policy keeps serving, alert raised
        assert r.compiled is serving
        assert _failing(metrics) == "1.0"
        _write(path, VALID_B)  # the exact serving text again
        assert r.compiled is serving
        assert r.policy_version == version
        assert _failing(metrics) == "0.0"
        assert r._watcher is not None and r._watcher.last_error is None
    finally:
        r.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(port: int, needle: str) -> str:
    body = ""
    for _ in range(100):
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
            if needle in body:
                return body
        except OSError:
            pass
        time.sleep(0.1)
    return body


def test_metrics_exporter_alert_clears_when_the_serving_text_is_restored(tmp_path: Path):
    path = tmp_path / "policy.yaml"
    path.write_text(VALID_A)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "router", "metrics", "--store", "memory://", "--port", str(port), "--addr", "127.0.0.1", "--interval", "0.1", "--policy", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert "router_policy_reload_failing 0.0" in _wait_for(port, "router_policy_reload_failing 0.0")
        _write(path, VALID_B)
        version_b = f'version="{policy_version(VALID_B)}"'
        assert version_b in _wait_for(port, version_b)  # the valid edit serves
        _write(path, BROKEN)
        assert "router_policy_reload_failing 1.0" in _wait_for(port, "router_policy_reload_failing 1.0")
        _write(path, VALID_B)
        assert "router_policy_reload_failing 0.0" in _wait_for(port, "router_policy_reload_failing 0.0")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_shared_policy_alert_clears_when_the_serving_version_is_published_again():
    from router.ledger import MemoryStore

    store = MemoryStore()
    metrics = RouterMetrics()
    good, broken = VALID_A, "version: 1\nprofiles: {p: {objective: cheapest}}\ndefault_profile: nope\n"
    await store.publish_policy("main", policy_version(good), good)
    r = Router("store:main", store=store, metrics=metrics, watch_interval_s=0)
    try:
        await r._refresh_shared_policy(force=True)
        serving = r.policy_version
        assert serving == policy_version(good) and _failing(metrics) == "0.0"
        # A version that does not compile here (published by a Router with another catalog, say): refused.
        await store.publish_policy("main", policy_version(broken), broken)
        await r._refresh_shared_policy()
        assert r.policy_version == serving and _failing(metrics) == "1.0"
        await r._refresh_shared_policy()  # checked again: still refused, still reported once
        assert _failing(metrics) == "1.0"
        # Rolling back re-publishes the serving version: nothing to swap, but the alert clears.
        await store.publish_policy("main", serving, good)
        await r._refresh_shared_policy()
        assert r.policy_version == serving and _failing(metrics) == "0.0"
    finally:
        await r.aclose()
