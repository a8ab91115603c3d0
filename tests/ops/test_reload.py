"""Hot reload: validate first, swap atomically, keep the old policy on a broken edit, versions, rollback."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from router._reload import PolicyWatcher, list_versions, policy_version, rollback
from router.catalog import default_catalog
from router.cli import get_app
from router.errors import PolicyError
from router.metrics import RouterMetrics
from router.policy import compile_policy, load_policy

REPO = Path(__file__).resolve().parents[2]


def _compile(text: str, name: str):
    catalog = default_catalog()
    return compile_policy(load_policy(text, catalog, filename=name), catalog)


def _touch_later(path: Path, text: str) -> None:
    """Write ``text`` so that the file's mtime surely differs from the previous write."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    if path.stat().st_mtime_ns == before:
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    target = tmp_path / "policy.yaml"
    target.write_text((REPO / "policies" / "cost-first.yaml").read_text())
    return target


def test_a_valid_edit_swaps_the_serving_policy(policy_file: Path):
    events = []
    watcher = PolicyWatcher(policy_file, _compile, interval_s=0, on_reload=lambda ok, v, e: events.append((ok, v, e)))
    first = watcher.get()
    _touch_later(policy_file, (REPO / "policies" / "quality-first.yaml").read_text())
    second = watcher.get()
    assert second is not first
    assert watcher.version == policy_version(policy_file.read_text())
    assert events == [(True, watcher.version, None)]


def test_a_broken_edit_keeps_the_old_policy_and_reports(policy_file: Path):
    metrics = RouterMetrics()
    watcher = PolicyWatcher(policy_file, _compile, interval_s=0, on_reload=lambda ok, v, e: metrics.record_policy_reload(ok, v))
    serving, version = watcher.get(), watcher.version
    _touch_later(policy_file, policy_file.read_text() + "\nthis is: [not yaml\n")
    assert watcher.get() is serving
    assert watcher.version == version
    assert watcher.last_error and "policy.yaml" in watcher.last_error
    assert b"router_policy_reload_failing 1.0" in metrics.render()
    # Fixing the file clears the alert.
    _touch_later(policy_file, (REPO / "policies" / "balanced.yaml").read_text())
    assert watcher.get() is not serving
    assert b"router_policy_reload_failing 0.0" in metrics.render()


def test_reload_is_checked_at_most_every_interval(policy_file: Path):
    watcher = PolicyWatcher(policy_file, _compile, interval_s=3600)
    serving = watcher.get()
    _touch_later(policy_file, (REPO / "policies" / "quality-first.yaml").read_text())
    assert watcher.get() is serving  # not before the interval ...
    assert watcher.check() is True  # ... unless asked


def test_versions_are_kept_and_rollback_restores_one(policy_file: Path):
    watcher = PolicyWatcher(policy_file, _compile, interval_s=0)
    v1 = watcher.version
    _touch_later(policy_file, (REPO / "policies" / "quality-first.yaml").read_text())
    watcher.get()
    v2 = watcher.version
    assert [v.version for v in list_versions(policy_file)] == [v1, v2]
    restored = rollback(policy_file, v1[:6], lambda text: _compile(text, str(policy_file)))
    assert restored == v1
    time.sleep(0.01)
    watcher.check()
    assert watcher.version == v1


def test_rollback_of_an_unknown_version_is_a_clear_error(policy_file: Path):
    PolicyWatcher(policy_file, _compile)
    with pytest.raises(PolicyError) as info:
        rollback(policy_file, "ffffffffffff", lambda text: None)
    assert "no single version matches" in str(info.value)


def test_policy_history_and_rollback_cli(policy_file: Path):
    watcher = PolicyWatcher(policy_file, _compile, interval_s=0)
    v1 = watcher.version
    _touch_later(policy_file, (REPO / "policies" / "balanced.yaml").read_text())
    watcher.get()
    runner = CliRunner()
    result = runner.invoke(get_app(), ["policy", "history", str(policy_file), "--json"])
    assert result.exit_code == 0, result.output
    import json

    data = json.loads(result.stdout)
    assert [v["version"] for v in data["versions"]] == [v1, watcher.version]
    assert data["versions"][-1]["current"] is True
    result = runner.invoke(get_app(), ["policy", "rollback", str(policy_file), v1])
    assert result.exit_code == 0, result.output
    assert policy_version(policy_file.read_text()) == v1
    result = runner.invoke(get_app(), ["policy", "rollback", str(policy_file), "nope"])
    assert result.exit_code == 2


def test_a_broken_policy_at_start_is_refused(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "nonsense": True}))
    with pytest.raises(PolicyError):
        PolicyWatcher(path, _compile)
