"""mutmut results kept in the repository (bench/mutation/stored.py) carry a stopped run to another machine.

A restored result must belong to the same function source (mutmut's hash of it): a changed function's mutants
are other mutants under the same numbers, and a stale "killed" would hide a survivor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.mutation import stored

MOD = "router.cost"


def RESULTS(root: Path) -> Path:  # noqa: N802 - reads as the folder it names
    return root / "results"


def _meta(codes: dict[str, int | None], hashes: dict[str, str]) -> dict:
    return {"exit_code_by_key": codes, "hash_by_function_name": hashes, "type_check_error_by_key": {},
            "durations_by_key": {}, "estimated_durations_by_key": {}}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path


def test_a_fresh_meta_gets_back_the_results_of_unchanged_functions_only(store: Path) -> None:
    first = _meta({f"{MOD}.x_a__mutmut_1": 1, f"{MOD}.x_a__mutmut_2": 0, f"{MOD}.x_b__mutmut_1": 1,
                   f"{MOD}.x_b__mutmut_2": None}, {"x_a": "aaa", "x_b": "bbb"})
    assert stored.save(MOD, first, "c0ffee1", "fast", store=RESULTS(store)) == 3  # the one not run is not stored

    fresh = store / "cost.py.meta"  # another machine: x_b's source changed since
    fresh.write_text(json.dumps(_meta({f"{MOD}.x_a__mutmut_1": None, f"{MOD}.x_a__mutmut_2": None,
                                       f"{MOD}.x_b__mutmut_1": None, f"{MOD}.x_b__mutmut_2": None},
                                      {"x_a": "aaa", "x_b": "CHANGED"})))
    count, by_commit = stored.restore(MOD, fresh, RESULTS(store))

    assert (count, by_commit) == (2, {"c0ffee1": 2})
    codes = json.loads(fresh.read_text())["exit_code_by_key"]
    assert codes == {f"{MOD}.x_a__mutmut_1": 1, f"{MOD}.x_a__mutmut_2": 0,
                     f"{MOD}.x_b__mutmut_1": None, f"{MOD}.x_b__mutmut_2": None}


def test_a_later_save_keeps_the_commit_each_result_was_measured_on(store: Path) -> None:
    stored.save(MOD, _meta({f"{MOD}.x_a__mutmut_1": 1, f"{MOD}.x_a__mutmut_2": 0}, {"x_a": "aaa"}), "old0001", "fast", store=RESULTS(store))
    # the next sitting restored both, ran the one that survived again (killed now by a new test) and a new one
    later = _meta({f"{MOD}.x_a__mutmut_1": 1, f"{MOD}.x_a__mutmut_2": 1, f"{MOD}.x_c__mutmut_1": 0},
                  {"x_a": "aaa", "x_c": "ccc"})
    assert stored.save(MOD, later, "new0002", "fast", store=RESULTS(store)) == 3

    kept = stored.load(MOD, RESULTS(store))
    assert kept is not None
    assert kept["commits"] == {f"{MOD}.x_a__mutmut_1": "old0001", f"{MOD}.x_a__mutmut_2": "new0002",
                               f"{MOD}.x_c__mutmut_1": "new0002"}
    assert kept["exit_code_by_key"][f"{MOD}.x_a__mutmut_2"] == 1


def test_results_of_a_function_that_changed_are_dropped_at_the_next_save(store: Path) -> None:
    stored.save(MOD, _meta({f"{MOD}.x_a__mutmut_1": 1}, {"x_a": "aaa"}), "old0001", "fast", store=RESULTS(store))
    stored.save(MOD, _meta({f"{MOD}.x_a__mutmut_1": None}, {"x_a": "new"}), "new0002", "fast", store=RESULTS(store))
    kept = stored.load(MOD, RESULTS(store))
    assert kept is not None and kept["exit_code_by_key"] == {}


def test_nothing_is_restored_without_a_stored_file_or_a_meta(store: Path) -> None:
    meta = store / "cost.py.meta"
    meta.write_text(json.dumps(_meta({f"{MOD}.x_a__mutmut_1": None}, {"x_a": "aaa"})))
    assert stored.restore(MOD, meta, RESULTS(store)) == (0, {})
    stored.save(MOD, _meta({f"{MOD}.x_a__mutmut_1": 1}, {"x_a": "aaa"}), "c0ffee1", "fast", store=RESULTS(store))
    assert stored.restore(MOD, store / "missing.meta", RESULTS(store)) == (0, {})


def test_a_run_in_a_fresh_copy_restores_the_kept_results_and_runs_only_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """run_module on a machine with no mutants/ yet: generate, restore the kept results, name only the rest."""
    from bench.mutation import full_run

    monkeypatch.setattr(full_run, "ROOT", tmp_path)
    monkeypatch.setattr(full_run, "workdir", lambda module: tmp_path)
    monkeypatch.setattr(full_run, "_git", lambda *args, **kw: "feed123")
    stored.save(MOD, _meta({f"{MOD}.x_a__mutmut_1": 1, f"{MOD}.x_a__mutmut_2": 0}, {"x_a": "aaa"}), "old0001", "fast",
                store=tmp_path / "bench" / "mutation" / "results")
    fresh = {f"{MOD}.x_a__mutmut_1": None, f"{MOD}.x_a__mutmut_2": None, f"{MOD}.x_a__mutmut_3": None}
    calls: list[list[str]] = []

    def call(cmd: list[str], **kw: object) -> int:
        calls.append(cmd)
        if len(calls) == 1:  # mutmut generated the mutants (and stopped on "nothing matches")
            meta = tmp_path / "mutants" / "router" / "cost.py.meta"
            meta.parent.mkdir(parents=True)
            meta.write_text(json.dumps(_meta(fresh, {"x_a": "aaa"}), indent=4))
        return 0

    monkeypatch.setattr(full_run.subprocess, "call", call)
    monkeypatch.setattr(full_run, "diff_of", lambda module, name: "")  # mutmut itself is not installed in CI
    full_run.run_module("router/cost.py", "mutmut", rerun=False)

    assert calls == [["nice", "-n", "19", "mutmut", "run", "router.cost.__generate_only__"],
                     ["nice", "-n", "19", "mutmut", "run", f"{MOD}.x_a__mutmut_3"]]
    recorded = json.loads(full_run._commits_file(tmp_path).read_text())["router/cost.py"]
    assert recorded["restored"] == {"count": 2, "by_commit": {"old0001": 2}}
    assert "2 results restored from a run on old0001" in full_run.report(["router/cost.py"])
