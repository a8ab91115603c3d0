"""The Vertex stub's Provisioned Throughput: scripted capacity, PT while under it, spill or 429 over it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from router.testing.vertex_stub import VertexStub

PATH = "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash-001:generateContent"


def call(stub, headers=None):
    body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}).encode()
    req = urllib.request.Request(stub.url + PATH, body, {"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def stub():
    with VertexStub(require_auth=False) as s:
        # 1,000 in + 500 out -> 1000 x 1 + 500 x 4 = 3,000 burndown tokens per call
        s.script("gemini-2.0-flash", usage={"input_tokens": 1000, "output_tokens": 500})
        yield s


def traffic(answer):
    return answer[1]["usageMetadata"]["trafficType"]


def test_pt_while_under_capacity_then_spill(stub):
    pt = stub.provision("gemini-2.0-flash", capacity=7_000)
    assert traffic(call(stub)) == "PROVISIONED_THROUGHPUT"
    assert traffic(call(stub)) == "PROVISIONED_THROUGHPUT"  # 6,000 <= 7,000
    assert traffic(call(stub)) == "ON_DEMAND"  # 9,000 > 7,000: spilled to PayGo
    assert traffic(call(stub, {"X-Vertex-AI-LLM-Shared-Request-Type": "priority"})) == "ON_DEMAND_PRIORITY"
    assert (pt.served, pt.spilled, pt.refused) == (2, 2, 0)


def test_dedicated_is_refused_with_429_over_capacity(stub):
    pt = stub.provision("gemini-2.0-flash", capacity=3_000)
    assert traffic(call(stub, {"X-Vertex-AI-LLM-Request-Type": "dedicated"})) == "PROVISIONED_THROUGHPUT"
    status, body = call(stub, {"X-Vertex-AI-LLM-Request-Type": "dedicated"})
    assert status == 429 and body["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert pt.refused == 1


def test_shared_skips_provisioned_throughput(stub):
    pt = stub.provision("gemini-2.0-flash", capacity=100_000)
    assert traffic(call(stub, {"X-Vertex-AI-LLM-Request-Type": "shared"})) == "ON_DEMAND"
    assert pt.served == 0 and pt.used(float("inf")) == 0


def test_the_window_rolls(stub):
    pt = stub.provision("gemini-2.0-flash", capacity=3_000, window_s=0.2)
    assert traffic(call(stub)) == "PROVISIONED_THROUGHPUT"
    assert traffic(call(stub)) == "ON_DEMAND"
    import time

    time.sleep(0.25)
    assert traffic(call(stub)) == "PROVISIONED_THROUGHPUT"
    assert pt.served == 2


def test_without_pt_dedicated_is_refused_and_the_default_is_on_demand(stub):
    assert traffic(call(stub)) == "ON_DEMAND"
    assert call(stub, {"X-Vertex-AI-LLM-Request-Type": "dedicated"})[0] == 429
