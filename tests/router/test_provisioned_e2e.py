"""Provisioned Throughput end to end: litellm's real Vertex code, the stub's scripted PT capacity, a real
redis-server. Every number is hand-computed from seed 000:

* gemini-2.0-flash burndown: text input 1, output 4; 3,360 adjusted tokens/s per GSU. One GSU: 100,800
  adjusted tokens per 30 s window.
* 1 GSU on the 1-week term ($1,200 a week), 2026-11-02 .. 2026-11-09: $1,200 / 604,800 per GSU-second.
* PayGo: $0.15 per 1M input tokens, $0.60 per 1M output tokens.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import textwrap
import time
import uuid
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from router.errors import NoEligibleModelError, RequestRefusedError
from router.ledger import BudgetScope, Window, store_from_url
from router.metrics import RouterMetrics

pytestmark = [pytest.mark.litellm, pytest.mark.redis_server]

DAY = dt.date(2026, 11, 3)
KEY = "gemini-2.0-flash@us-central1"
POLICY = """\
version: 1
provisioned:
  mode: %(mode)s
  wait_s: %(wait)s
  subscriptions:
    - {model: gemini-2.0-flash, region: us-central1, gsu: 1, term: 1w, start: 2026-11-02, end: 2026-11-09}
candidates:
  - {model: gemini-2.0-flash, location: us-central1}
profiles:
  main: {objective: cheapest, fallbacks: 0}
default_profile: main
budgets:
  - {name: all, scope: global, window: "calendar:month@UTC", limit_usd: "1"}
"""
GLOBAL = BudgetScope("global", Window.parse("calendar:month@UTC"), Decimal("1"))
MSG = [{"role": "user", "content": "Summarise the quarterly report."}]


def policy_file(tmp_path, mode="first", wait="0"):
    path = tmp_path / f"pt-{mode}.yaml"
    path.write_text(POLICY % {"mode": mode, "wait": wait})
    return path


@pytest.fixture
def redis_url(redis_server):
    if not redis_server.ping():
        redis_server.start()
    return redis_server.url


async def ledger(url, prefix):
    store = store_from_url(url, prefix=prefix)
    try:
        return await store.spend(GLOBAL), (await store.pt_usage([KEY]))[KEY], await store.pt_totals()
    finally:
        await store.close()


def test_under_capacity_every_request_is_pt_books_zero_and_records_its_amortised_cost(tmp_path, redis_url, vertex_stub, stub_router):
    # 1,000 in + 500 out: 1,000 + 2,000 = 3,000 adjusted tokens (the claim: prompt 1,000 + max_tokens 500 x 4 = 3,000)
    vertex_stub.script("gemini-2.0-flash", usage={"input_tokens": 1000, "output_tokens": 500})
    vertex_stub.provision("gemini-2.0-flash", capacity=100_800)
    prefix = f"pt{uuid.uuid4().hex[:8]}"
    log = tmp_path / "requests.jsonl"
    metrics = RouterMetrics()
    router = stub_router(policy_file(tmp_path), store=redis_url, key_prefix=prefix, request_log=str(log), metrics=metrics)
    for _ in range(5):
        resp = router.complete(MSG, prompt_tokens=1000, max_tokens=500, at=DAY)
        r = resp.routing
        assert r.traffic_type == "PROVISIONED_THROUGHPUT"
        assert r.cost_usd == 0 and r.attempts[0].reserved_usd == 0
        # 3,000 / 3,360 = 0.892857142857... GSU-seconds; x $1,200 / 604,800 = $0.00177154195... (to the nano)
        assert r.provisioned["burndown_tokens"] == 3000
        assert r.provisioned["gsu_seconds"] == Decimal("0.892857143")
        assert r.provisioned["amortised_cost_usd"] == Decimal("0.001771542")
        assert r.provisioned["paygo_equivalent_usd"] == Decimal("0.00045")  # 1000 x 0.15/1M + 500 x 0.60/1M
        assert r.decision["provisioned"]["covered"] is True
    for request in vertex_stub.model_requests("gemini-2.0-flash"):
        assert "x-vertex-ai-llm-request-type" not in request.headers  # first: Vertex's default, PT then PayGo
    spend, used, totals = asyncio.run(ledger(redis_url, prefix))
    assert spend == 0 and used == 15_000
    [month] = totals
    assert (month.key, month.served, month.spilled, month.tokens) == (KEY, 5, 0, 15_000)
    assert month.amortised_usd == Decimal("0.00885771") and month.paygo_avoided_usd == Decimal("0.00225")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["traffic_type"], e["cost_usd"], e["location"], e["provisioned"]["amortised_cost_usd"]) for e in lines] == [("PROVISIONED_THROUGHPUT", "0", "us-central1", "0.001771542")] * 5
    assert 'router_pt_requests_total{model="gemini-2.0-flash",outcome="served",region="us-central1"} 5.0' in metrics.render().decode()
    # router spend shows the PT use beside the (zero) PayGo spend
    from router.cli import get_app

    out = CliRunner().invoke(get_app(), ["spend", "--store", redis_url, "--prefix", prefix, "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    budget = next(r for r in rows if r["kind"] == "budget")
    pt = next(r for r in rows if r["kind"] == "provisioned")
    assert budget["spent_usd"] == "0"
    assert (pt["scope"], pt["served_requests"], pt["spilled_requests"], pt["amortised_usd"], pt["paygo_avoided_usd"]) == (f"provisioned:{KEY}", 5, 0, "0.00885771", "0.00225")


def test_over_capacity_the_spill_is_billed_at_paygo_and_counted(tmp_path, redis_url, vertex_stub, stub_router):
    # 1,000 in + 8,000 out: 1,000 + 32,000 = 33,000 adjusted tokens; three fit in 100,800 (99,000)
    vertex_stub.script("gemini-2.0-flash", usage={"input_tokens": 1000, "output_tokens": 8000})
    pt = vertex_stub.provision("gemini-2.0-flash", capacity=100_800)
    prefix = f"pt{uuid.uuid4().hex[:8]}"
    metrics = RouterMetrics()
    router = stub_router(policy_file(tmp_path), store=redis_url, key_prefix=prefix, metrics=metrics)
    results = [router.complete(MSG, prompt_tokens=1000, max_tokens=8000, at=DAY).routing for _ in range(4)]
    assert [r.traffic_type for r in results] == ["PROVISIONED_THROUGHPUT"] * 3 + ["ON_DEMAND"]
    assert [r.cost_usd for r in results[:3]] == [0, 0, 0]
    spill = results[3]
    # the decision saw 1,800 tokens of headroom < 33,000: it estimated and reserved the PayGo spill
    assert spill.decision["provisioned"]["covered"] is False and spill.decision["provisioned"]["headroom"] == 1800
    assert spill.attempts[0].reserved_usd == Decimal("0.00495")  # 1000 x 0.15/1M + 8000 x 0.60/1M
    assert spill.cost_usd == Decimal("0.00495") and spill.provisioned["traffic"] == "spilled"
    assert not spill.warnings
    assert (pt.served, pt.spilled) == (3, 1)
    spend, used, totals = asyncio.run(ledger(redis_url, prefix))
    assert spend == Decimal("0.00495") and used == 99_000
    [month] = totals
    assert (month.served, month.spilled, month.spill_paygo_usd) == (3, 1, Decimal("0.00495"))
    assert month.served_share == Decimal("0.75")
    text = metrics.render().decode()
    assert 'router_pt_requests_total{model="gemini-2.0-flash",outcome="spilled",region="us-central1"} 1.0' in text
    asyncio.run(router.refresh_metrics())
    text = metrics.render().decode()
    assert 'router_pt_utilisation_ratio{model="gemini-2.0-flash",region="us-central1"} 0.982142857142857' in text  # 99,000 / 100,800
    assert 'router_pt_served_share_ratio{model="gemini-2.0-flash",region="us-central1"} 0.75' in text
    # router monitor: the window's tokens, spill-overs and the PT-served share
    from router.cli import get_app

    out = CliRunner().invoke(get_app(), ["monitor", "--store", redis_url, "--prefix", prefix, "--json", "--policy", str(policy_file(tmp_path))])
    assert out.exit_code == 0, out.output
    [row] = json.loads(out.stdout)["provisioned"]
    assert (row["subscription"], row["window_tokens"], row["served"], row["spilled"], row["served_share"]) == (KEY, 99_000, 3, 1, "0.75")
    shown = CliRunner().invoke(get_app(), ["monitor", "--store", redis_url, "--prefix", prefix, "--once", "--wide"])
    assert "Provisioned Throughput" in shown.stdout and "75.0%" in shown.stdout


def test_only_refuses_when_saturated(tmp_path, redis_url, vertex_stub, stub_router):
    vertex_stub.script("gemini-2.0-flash", usage={"input_tokens": 1000, "output_tokens": 8000})
    vertex_stub.provision("gemini-2.0-flash", capacity=100_800)
    prefix = f"pt{uuid.uuid4().hex[:8]}"
    router = stub_router(policy_file(tmp_path, mode="only"), store=redis_url, key_prefix=prefix)
    for _ in range(3):
        assert router.complete(MSG, prompt_tokens=1000, max_tokens=8000, at=DAY).routing.traffic_type == "PROVISIONED_THROUGHPUT"
    with pytest.raises(NoEligibleModelError) as info:
        router.complete(MSG, prompt_tokens=1000, max_tokens=8000, at=DAY)
    assert "saturated: headroom 1,800 < this request's 33,000" in info.value.rejected[0][1]
    sent = vertex_stub.model_requests("gemini-2.0-flash")
    assert len(sent) == 3  # the refused request never reached Vertex
    assert all(r.headers["x-vertex-ai-llm-request-type"] == "dedicated" for r in sent)
    spend, used, _ = asyncio.run(ledger(redis_url, prefix))
    assert spend == 0 and used == 99_000


def test_only_with_a_wait_refuses_once_the_deadline_passes(tmp_path, redis_url, vertex_stub, stub_router):
    vertex_stub.script("gemini-2.0-flash", usage={"input_tokens": 1000, "output_tokens": 8000})
    vertex_stub.provision("gemini-2.0-flash", capacity=100_800)
    prefix = f"pt{uuid.uuid4().hex[:8]}"
    router = stub_router(policy_file(tmp_path, mode="only", wait="0.3"), store=redis_url, key_prefix=prefix)
    for _ in range(3):
        router.complete(MSG, prompt_tokens=1000, max_tokens=8000, at=DAY)
    with pytest.raises(RequestRefusedError, match=r"saturated: headroom 1,800 < 33,000 burndown-adjusted tokens after waiting 0.3 s \(provisioned: only\)"):
        router.complete(MSG, prompt_tokens=1000, max_tokens=8000, at=DAY)
    assert len(vertex_stub.model_requests("gemini-2.0-flash")) == 3


def test_never_sends_shared_and_bills_paygo(tmp_path, redis_url, vertex_stub, stub_router):
    vertex_stub.script("gemini-2.0-flash", usage={"input_tokens": 1000, "output_tokens": 500})
    pt = vertex_stub.provision("gemini-2.0-flash", capacity=100_800)
    router = stub_router(policy_file(tmp_path, mode="never"), store=redis_url, key_prefix=f"pt{uuid.uuid4().hex[:8]}")
    r = router.complete(MSG, prompt_tokens=1000, max_tokens=500, at=DAY).routing
    assert r.traffic_type == "ON_DEMAND" and r.cost_usd == Decimal("0.00045") and r.provisioned is None
    assert vertex_stub.model_requests("gemini-2.0-flash")[-1].headers["x-vertex-ai-llm-request-type"] == "shared"
    assert pt.served == 0


WORKER = textwrap.dedent(
    """
    import asyncio, datetime, json, sys
    from router import Router
    import os, pathlib, time
    policy, store, prefix, project, location, creds, api_base, barrier = sys.argv[1:9]
    r = Router(policy, store=store, key_prefix=prefix, vertex_project=project, vertex_location=location,
               vertex_credentials=creds, api_base=api_base, watch_policy=False)
    import litellm  # noqa: F401 - imported before the barrier, so both processes send within seconds
    pathlib.Path(barrier, f"ready-{os.getpid()}").touch()
    while not pathlib.Path(barrier, "go").exists():
        time.sleep(0.02)
    async def one():
        resp = await r.acomplete([{"role": "user", "content": "hi"}], prompt_tokens=1000, max_tokens=8000, at=datetime.date(2026, 11, 3))
        return [str(resp.routing.attempts[0].reserved_usd), resp.routing.traffic_type, str(resp.routing.cost_usd)]
    async def main():
        out = await asyncio.gather(*(one() for _ in range(3)))
        await r.aclose()
        print(json.dumps(out))
    asyncio.run(main())
    """
)


def test_two_processes_share_the_capacity_counter(tmp_path, redis_url, vertex_stub, vertex_router_kwargs):
    """Two processes x 3 concurrent requests of 33,000 adjusted tokens against the router's 100,800 per
    window: the shared counter grants exactly three claims ($0 reserved) in all; the other three reserve
    the PayGo spill (1,000 x $0.15/1M + 8,000 x $0.60/1M = $0.00495). Without sharing, each process would
    grant itself three. (The stub has room for all six, so none spills and no claim is given back.)"""
    vertex_stub.script("gemini-2.0-flash", usage={"input_tokens": 1000, "output_tokens": 8000})
    vertex_stub.provision("gemini-2.0-flash", capacity=1_000_000)
    prefix = f"pt{uuid.uuid4().hex[:8]}"
    k = vertex_router_kwargs
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    args = [str(policy_file(tmp_path)), redis_url, prefix, k["vertex_project"], k["vertex_location"], k["vertex_credentials"], k["api_base"], str(barrier)]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    deadline = time.monotonic() + 120
    while len(list(barrier.glob("ready-*"))) < 2 and time.monotonic() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.05)
    (barrier / "go").touch()  # both processes send together: all six requests fall in one 30 s window
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        results.extend(json.loads(out.strip().splitlines()[-1]))
    reserved = sorted(Decimal(r[0]) for r in results)
    assert reserved == [Decimal(0)] * 3 + [Decimal("0.00495")] * 3
    assert all(traffic == "PROVISIONED_THROUGHPUT" and Decimal(cost) == 0 for _, traffic, cost in results)
    spend, _, totals = asyncio.run(ledger(redis_url, prefix))
    [month] = totals
    assert (month.served, month.spilled, month.tokens) == (6, 0, 198_000)
    assert spend == 0


def test_a_streamed_pt_response_books_zero_and_a_failed_attempt_gives_its_claim_back(tmp_path, redis_url, vertex_stub, stub_router):
    vertex_stub.script("gemini-2.0-flash", usage={"input_tokens": 1000, "output_tokens": 500})
    vertex_stub.provision("gemini-2.0-flash", capacity=100_800)
    prefix = f"pt{uuid.uuid4().hex[:8]}"
    router = stub_router(policy_file(tmp_path), store=redis_url, key_prefix=prefix)
    stream = router.complete(MSG, prompt_tokens=1000, max_tokens=500, at=DAY, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text
    r = stream.routing
    assert (r.traffic_type, r.cost_usd, r.provisioned["amortised_cost_usd"]) == ("PROVISIONED_THROUGHPUT", 0, Decimal("0.001771542"))
    # a 500 from Vertex: the attempt is released and its 3,000-token claim given back
    vertex_stub.script("gemini-2.0-flash", error="server_error")
    with pytest.raises(Exception):
        router.complete(MSG, prompt_tokens=1000, max_tokens=500, at=DAY)
    spend, used, _ = asyncio.run(ledger(redis_url, prefix))
    assert spend == 0 and used == 3_000  # only the streamed request's actual tokens


@pytest.mark.reservation_overrun  # deliberate: the stub's PT is smaller than the router's subscription
def test_a_spill_the_router_did_not_expect_is_billed_in_full_and_flagged(tmp_path, redis_url, vertex_stub, stub_router):
    """The project's PT is used by other traffic: the stub has room for 2,000 adjusted tokens only, the
    router's counter sees the whole GSU. The request reserves $0 for its tokens, Vertex spills it: it is
    billed at PayGo ($0.00045) above its reservation, counted as an overrun, and the cause is named."""
    vertex_stub.script("gemini-2.0-flash", usage={"input_tokens": 1000, "output_tokens": 500})
    vertex_stub.provision("gemini-2.0-flash", capacity=2_000)
    prefix = f"pt{uuid.uuid4().hex[:8]}"
    metrics = RouterMetrics()
    router = stub_router(policy_file(tmp_path), store=redis_url, key_prefix=prefix, metrics=metrics)
    r = router.complete(MSG, prompt_tokens=1000, max_tokens=500, at=DAY).routing
    assert (r.traffic_type, r.attempts[0].reserved_usd, r.cost_usd) == ("ON_DEMAND", 0, Decimal("0.00045"))
    assert any("Provisioned Throughput gemini-2.0-flash@us-central1 was to serve it" in w for w in r.warnings)
    assert "router_reservation_overruns_total 1.0" in metrics.render().decode()
    spend, used, _ = asyncio.run(ledger(redis_url, prefix))
    assert spend == Decimal("0.00045") and used == 0  # the claim was given back
