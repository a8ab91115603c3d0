"""The Redis store's memo of budget registry entries it sent (``limit|last seen`` in the ledger's meta hash,
what ``router spend`` shows as a budget's last use) is bounded: more than 10,000 entries and it is cleared
before the next one, so a budget named again after that re-sends its entry (issue 12: redis_store.py
``_meta_update`` 12 / 13, the 10,000-entry bound)."""

from __future__ import annotations

from pathlib import Path

from tests.ledger.helpers import open_fake_store

NOW_MS = 1_700_000_000_000


def test_the_sent_registry_memo_is_cleared_only_past_10000_entries(tmp_path: Path) -> None:
    store, _, _ = open_fake_store(tmp_path, "fail_closed", NOW_MS / 1000)
    for i in range(10_001):  # b0 .. b10000: the memo reaches 10,001 entries, never more than 10,000 before an insert
        assert store._meta_update(f"b{i}", 5, NOW_MS) == f"5|{NOW_MS}"
    # b0 was sent 1 ms ago with the same limit: not re-sent (the memo was not cleared at 10,000)
    assert store._meta_update("b0", 5, NOW_MS + 1) == ""
    # the 10,002nd budget finds 10,001 entries: the memo is cleared first, so b1 is sent again
    assert store._meta_update("b10001", 5, NOW_MS + 1) == f"5|{NOW_MS + 1}"
    assert store._meta_update("b1", 5, NOW_MS + 2) == f"5|{NOW_MS + 2}"
