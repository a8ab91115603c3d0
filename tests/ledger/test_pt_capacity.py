"""Provisioned Throughput capacity counter: the same contract on memory, fakeredis and a real redis-server."""

from __future__ import annotations

import asyncio

import pytest

KEY = "gemini-2.0-flash@us-central1"


async def test_claims_are_granted_until_the_capacity_then_denied(store):
    first = await store.pt_claim(KEY, 60_000, 100_800)
    assert first.granted and first.used == 60_000 and first.headroom == 40_800
    second = await store.pt_claim(KEY, 40_800, 100_800)  # exactly up to the capacity
    assert second.granted and second.used == 100_800
    third = await store.pt_claim(KEY, 1, 100_800)
    assert not third.granted and third.used == 100_800
    assert await store.pt_usage([KEY, "gemini-2.0-flash@europe-west4"]) == {KEY: 100_800, "gemini-2.0-flash@europe-west4": 0}


async def test_a_denied_claim_adds_nothing(store):
    assert (await store.pt_claim(KEY, 90_000, 100_000)).granted
    assert not (await store.pt_claim(KEY, 20_000, 100_000)).granted
    assert (await store.pt_usage([KEY]))[KEY] == 90_000
    assert (await store.pt_claim(KEY, 10_000, 100_000)).granted


async def test_adjust_reconciles_the_claims_bucket(store, clock):
    claim = await store.pt_claim(KEY, 9_000, 100_000)
    clock.advance(3)
    assert await store.pt_adjust(KEY, claim.bucket, -6_000) is True  # actual 3,000 < estimate 9,000
    assert (await store.pt_usage([KEY]))[KEY] == 3_000
    assert await store.pt_adjust(KEY, claim.bucket, -10_000) is True  # never below zero in a bucket
    assert (await store.pt_usage([KEY]))[KEY] == 0
    assert await store.pt_adjust(KEY, 0, 2_500) is True  # 0: the current second (PT-served without a claim)
    assert (await store.pt_usage([KEY]))[KEY] == 2_500


async def test_the_window_is_30_seconds_rolling(store, clock):
    clock.set(1_750_000_000.0)
    assert (await store.pt_claim(KEY, 50_000, 100_000)).granted
    clock.advance(15)
    assert (await store.pt_claim(KEY, 50_000, 100_000)).granted
    assert not (await store.pt_claim(KEY, 1, 100_000)).granted
    clock.advance(14.5)  # 29.5 s after the first claim: still in the window
    assert (await store.pt_usage([KEY]))[KEY] == 100_000
    clock.advance(0.5)  # 30 s: the first bucket has left
    assert (await store.pt_usage([KEY]))[KEY] == 50_000
    assert (await store.pt_claim(KEY, 50_000, 100_000)).granted
    clock.advance(60)
    assert (await store.pt_usage([KEY]))[KEY] == 0


async def test_an_adjustment_of_a_bucket_out_of_the_window_is_dropped(store, clock):
    claim = await store.pt_claim(KEY, 9_000, 100_000)
    clock.advance(31)
    assert await store.pt_adjust(KEY, claim.bucket, 5_000) is False
    assert (await store.pt_usage([KEY]))[KEY] == 0


async def test_concurrent_claims_never_exceed_the_capacity(store):
    results = await asyncio.gather(*(store.pt_claim(KEY, 1_000, 10_500) for _ in range(40)))
    assert sum(r.granted for r in results) == 10
    assert (await store.pt_usage([KEY]))[KEY] == 10_000


@pytest.mark.parametrize("key", ["", "Gemini@us", "model", "m@", "a b@us", "{x}@us", "m@us:1"])
async def test_bad_keys_are_refused(store, key):
    with pytest.raises(ValueError, match="invalid Provisioned Throughput key"):
        await store.pt_claim(key, 1, 10)


async def test_bad_numbers_are_refused(store):
    with pytest.raises(ValueError):
        await store.pt_claim(KEY, -1, 10)
    with pytest.raises(ValueError):
        await store.pt_claim(KEY, True, 10)
    with pytest.raises(ValueError):
        await store.pt_adjust(KEY, 0, 1.5)


async def test_settle_reconciles_and_counts_the_month(store, clock):
    from decimal import Decimal as D

    clock.set(1_793_577_600.0)  # 2026-11-02T00:00:00Z
    claim = await store.pt_claim(KEY, 9_000, 100_800)
    await store.pt_settle(KEY, claim.bucket, 3_000 - 9_000, True, 3_000, D("0.001771"), D("0.00045"))
    assert (await store.pt_usage([KEY]))[KEY] == 3_000
    spill = await store.pt_claim(KEY, 5_000, 100_800)
    await store.pt_settle(KEY, spill.bucket, -5_000, False, 0, D(0), D("0.0012"))  # spilled: estimate given back
    assert (await store.pt_usage([KEY]))[KEY] == 3_000
    await store.pt_settle(KEY, 0, 1_000, True, 1_000, D("0.0005"), D("0.0001"))  # served without a claim
    [totals] = await store.pt_totals()
    assert (totals.key, totals.month, totals.served, totals.spilled, totals.tokens) == (KEY, "2026-11", 2, 1, 4_000)
    assert (totals.amortised_usd, totals.paygo_avoided_usd, totals.spill_paygo_usd) == (D("0.002271"), D("0.00055"), D("0.0012"))
    assert totals.served_share == D(2) / D(3)
    assert (await store.pt_usage([KEY]))[KEY] == 4_000
    clock.advance(31 * 86_400)  # December: a new month row, November kept
    await store.pt_settle(KEY, 0, 0, False, 0, D(0), D("0.01"))
    months = [(t.month, t.served, t.spilled) for t in await store.pt_totals()]
    assert months == [("2026-12", 0, 1), ("2026-11", 2, 1)]
