"""Issue 11 item 1: every caller-supplied name maps to ledger keys injectively.

Before: names outside ``[A-Za-z0-9_.-=@]`` were sanitised with an 8-hex-digit hash suffix, so ``tenant="a/b"``
booked into the counter of a tenant literally named ``a_b.c14cddc0`` (and ``Müller`` into ``M_ller.a7842989``),
and ``tenant=""`` became a tenant called ``.e3b0c442``. Now names are percent-encoded reversibly."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from router.errors import RequestError
from router.ledger import BudgetScope, Window
from router.ledger.keys import KeySpace
from router.ledger.names import MAX_NAME_CHARS, decode_name, encode_name, scope_of
from router.policy import RequestFeatures, compile_policy, load_policy

D = Decimal
POLICY = """\
version: 1
candidates: [{model: gemini-2.5-flash}]
profiles: {p: {objective: cheapest}}
default_profile: p
budgets:
  - {name: per-tenant, scope: tenant, window: calendar:month@UTC, limit_usd: "10"}
  - {name: per-app, scope: app, window: calendar:month@UTC, limit_usd: "10"}
  - {name: per-team, scope: "tag:team", window: calendar:month@UTC, limit_usd: "10"}
"""
#: Pairs that shared one counter on main (the raw name, and the sanitised form it was turned into).
COLLISIONS = [("a/b", "a_b.c14cddc0"), ("Müller", "M_ller.a7842989")]
names = st.text(min_size=1, max_size=MAX_NAME_CHARS).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s))


@pytest.fixture(scope="module")
def compiled():
    from router.catalog import default_catalog

    catalog = default_catalog()
    return compile_policy(load_policy(POLICY, catalog), catalog)


@given(names, names)
def test_encoding_is_injective(a, b):
    if encode_name(a) == encode_name(b):
        assert a == b


@given(names)
def test_encoding_is_reversible_and_free_of_key_separators(name):
    encoded = encode_name(name)
    assert decode_name(encoded) == name
    assert not set(encoded) & set(":|={} \n/")


@given(names, names, names)
def test_scopes_of_different_names_or_kinds_differ(a, b, key):
    scopes = {scope_of("tenant", a), scope_of("app", a), scope_of("tag", a, key)}
    assert len(scopes) == 3
    if a != b:
        assert scope_of("tenant", a) != scope_of("tenant", b)
        assert scope_of("tag", a, key) != scope_of("tag", b, key)


@pytest.mark.parametrize(("raw", "lookalike"), COLLISIONS)
def test_the_reported_collisions_get_separate_budgets(compiled, raw, lookalike):
    for attr in ("tenant", "app"):
        (one,) = compiled.budgets_for(RequestFeatures(**{attr: raw}))
        (two,) = compiled.budgets_for(RequestFeatures(**{attr: lookalike}))
        assert one.id != two.id
    (one,) = compiled.budgets_for(RequestFeatures(tags={"team": raw}))
    (two,) = compiled.budgets_for(RequestFeatures(tags={"team": lookalike}))
    assert one.id != two.id
    assert compiled.budgets_for(RequestFeatures(tenant="a/b"))[0].scope == "tenant:a%2Fb"
    assert compiled.budgets_for(RequestFeatures(tenant="Müller"))[0].scope == "tenant:M%C3%BCller"


@pytest.mark.parametrize(("raw", "lookalike"), COLLISIONS)
async def test_colliding_names_book_into_separate_counters(store, compiled, raw, lookalike):
    """On every backend (memory, fakeredis, a real redis-server): the lookalike's spend never shows in the raw
    name's counter, and a cap on one is not eaten by the other."""
    (mine,) = compiled.budgets_for(RequestFeatures(tenant=raw))
    (theirs,) = compiled.budgets_for(RequestFeatures(tenant=lookalike))
    assert (await store.reserve("theirs", [theirs], D("9.5"), 60)).granted
    assert await store.settle("theirs", D("9.5"))
    assert await store.spend(mine) == 0
    assert (await store.reserve("mine", [mine], D("9"), 60)).granted  # would be denied on a shared counter
    assert await store.settle("mine", D("2.5"))
    assert await store.spend(mine) == D("2.5")
    assert await store.spend(theirs) == D("9.5")
    listed = {info.budget.id for info in await store.list_scopes()}
    assert listed == {mine.id, theirs.id}


@pytest.mark.parametrize("attr", ["tenant", "app"])
def test_an_empty_name_is_refused_not_a_tenant_called_empty(compiled, attr):
    with pytest.raises(RequestError) as info:
        RequestFeatures(**{attr: ""})
    assert info.value.field == attr and "must not be empty" in str(info.value) and "None" in str(info.value)


def test_an_empty_tag_value_or_key_is_refused():
    with pytest.raises(RequestError, match=r"tags\['team'\]: must not be empty"):
        RequestFeatures(tags={"team": ""})
    with pytest.raises(RequestError, match=r"tags: a tag name must not be empty"):
        RequestFeatures(tags={"": "x"})
    with pytest.raises(RequestError, match=r"tags\['team'\]: must be a string, not int"):
        RequestFeatures(tags={"team": 7})


def test_a_name_longer_than_the_limit_is_refused_naming_the_field_and_limit():
    RequestFeatures(tenant="x" * MAX_NAME_CHARS)
    with pytest.raises(RequestError, match=r"^tenant: is 129 characters long; at most 128 are allowed$"):
        RequestFeatures(tenant="x" * 129)


def test_a_non_canonical_scope_is_refused_by_the_ledger():
    """A scope built by hand must use the encoded form, so two spellings can never name one counter."""
    window = Window.parse("rolling:24h")
    for bad in ("tenant:a/b", "tenant:%41", "tenant:a%2fb", "tenant:", "tag:team", "tag:=x", "tenant:a|b", "tenant:{x}"):
        with pytest.raises(ValueError, match="invalid budget scope"):
            BudgetScope(bad, window, D(1))
    assert BudgetScope(scope_of("tag", "ml=1", "team"), window, D(1)).scope == "tag:team=ml%3D1"


def test_every_key_of_a_reservation_stays_in_the_prefix_hash_slot():
    """Redis Cluster: braces and separators in names are encoded, so the {prefix} tag still decides the slot."""
    keys = KeySpace("router")
    scope = BudgetScope(scope_of("tenant", "{evil}:x|y}"), Window.parse("calendar:month@UTC"), D(1))
    assert "{" not in scope.id and "}" not in scope.id
    built = [keys.rolling(scope.id), keys.calendar(scope.id, 0), keys.hold_set(scope.id), keys.hold_sum(scope.id), keys.meta, keys.record("r1")]
    assert {key_slot(k.encode()) for k in built} == {key_slot(b"router")}


def test_a_name_that_is_not_unicode_text_is_refused():
    with pytest.raises(RequestError, match=r"^tenant: .*not valid Unicode text"):
        RequestFeatures(tenant="a\ud800")
