"""Hot reload under load (zero failed requests, new routing within a second) and request metrics."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import pytest

from router.metrics import RouterMetrics

pytestmark = pytest.mark.litellm
HELLO = [{"role": "user", "content": "hello"}]


def _closed_port() -> int:
    """A loopback port nothing listens on (a Redis that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _policy(model: str) -> str:
    return f"""\
version: 1
candidates: [{{model: {model}}}]
profiles: {{p: {{objective: cheapest}}}}
default_profile: p
"""


async def test_editing_the_policy_under_load_switches_within_a_second_without_failures(stub_router, vertex_stub, tmp_path: Path):
    path = tmp_path / "policy.yaml"
    path.write_text(_policy("gemini-2.5-flash-lite"))
    metrics = RouterMetrics()
    r = stub_router(str(path), watch_interval_s=0.1, metrics=metrics)
    first_version = r.policy_version
    results: list = []
    errors: list = []
    stop = asyncio.Event()

    async def client() -> None:
        while not stop.is_set():
            try:
                results.append((time.monotonic(), (await r.acomplete(HELLO, max_tokens=50)).routing))
            except Exception as exc:  # noqa: BLE001 - the test counts every failure
                errors.append(exc)

    tasks = [asyncio.create_task(client()) for _ in range(4)]
    await asyncio.sleep(0.5)
    path.write_text(_policy("gemini-2.5-flash"))
    os.utime(path)
    edited = time.monotonic()
    await asyncio.sleep(1.5)
    # A broken edit changes nothing and raises the alert metric.
    path.write_text(_policy("gemini-2.5-flash") + "oops: [\n")
    broken = time.monotonic()
    await asyncio.sleep(0.8)
    stop.set()
    await asyncio.gather(*tasks)

    assert errors == []
    after = [rec for t, rec in results if t > edited + 1.0]
    assert after and all(rec.model == "gemini-2.5-flash" for rec in after)
    assert all(rec.policy_version != first_version for rec in after)
    assert all(rec.model == "gemini-2.5-flash" for t, rec in results if t > broken)
    assert "router_policy_reload_failing 1.0" in metrics.render().decode()


async def test_router_records_requests_cost_and_fallbacks(stub_router, vertex_stub, tmp_path: Path):
    path = tmp_path / "policy.yaml"
    path.write_text(_policy("gemini-2.5-flash-lite").replace("candidates: [{model: gemini-2.5-flash-lite}]", "candidates: [{model: gemini-2.5-flash-lite}, {model: gemini-2.5-flash}]"))
    metrics = RouterMetrics()
    r = stub_router(str(path), metrics=metrics)
    vertex_stub.script("gemini-2.5-flash", usage={"input_tokens": 1000, "output_tokens": 100})
    vertex_stub.script("gemini-2.5-flash-lite", error="rate_limited", error_times=1)
    record = (await r.acomplete(HELLO, max_tokens=100, tenant="acme", prompt_tokens=1000)).routing
    assert record.model == "gemini-2.5-flash"
    text = metrics.render().decode()
    assert 'router_requests_total{model="gemini-2.5-flash",outcome="ok",rule="-",tenant="acme"} 1.0' in text
    assert f'router_cost_usd_total{{model="gemini-2.5-flash",rule="-",tenant="acme"}} {float(record.cost_usd)}' in text
    assert 'router_fallbacks_total{model="gemini-2.5-flash-lite",reason="rate_limited"} 1.0' in text
    assert "router_decision_seconds_count 1.0" in text


async def test_fail_open_serves_journals_and_reports_the_backlog(stub_router, vertex_stub, tmp_path: Path):
    """Redis unreachable in fail_open: the call is served, its spend journaled; the backlog metric shows it."""
    dead = _closed_port()
    path = tmp_path / "policy.yaml"
    path.write_text(_policy("gemini-2.5-flash"))
    metrics = RouterMetrics()
    r = stub_router(str(path), store=f"redis://127.0.0.1:{dead}/0", failure_mode="fail_open", journal_path=str(tmp_path / "journal.jsonl"), metrics=metrics)
    record = (await r.acomplete(HELLO, max_tokens=50)).routing
    assert record.model == "gemini-2.5-flash" and record.cost_usd > 0
    await r.refresh_metrics()
    text = metrics.render().decode()
    backlog = [line for line in text.splitlines() if line.startswith("router_journal_backlog ")]
    assert backlog and float(backlog[0].split()[1]) >= 1
    assert (tmp_path / "journal.jsonl").read_text().count(record.request_id) >= 1


async def test_fail_closed_refuses_clearly_when_redis_is_down(stub_router, vertex_stub, tmp_path: Path):
    from router.errors import StoreUnavailableError

    dead = _closed_port()
    path = tmp_path / "policy.yaml"
    path.write_text(_policy("gemini-2.5-flash"))
    r = stub_router(str(path), store=f"redis://127.0.0.1:{dead}/0")
    with pytest.raises(StoreUnavailableError) as info:
        await r.acomplete(HELLO, max_tokens=50)
    assert f"127.0.0.1:{dead}" in str(info.value)
    assert vertex_stub.model_requests() == []
