"""The mutation harness (bench/mutation/full_run.py) survives a truncated mutmut ``.meta`` file.

mutmut rewrites ``mutants/<module>.meta`` in place; a run stopped while it saves leaves half a JSON file, and
both ``--report-only`` and the next ``mutmut run`` used to crash on it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.mutation import full_run

CODES = {"router.cost.x_a__mutmut_1": 1, "router.cost.x_a__mutmut_2": 0, "router.cost.x_a__mutmut_3": None}
FULL = {"exit_code_by_key": CODES, "hash_by_function_name": {"x_a": "abc"}, "type_check_error_by_key": {},
        "durations_by_key": {"router.cost.x_a__mutmut_1": 1.5}, "estimated_durations_by_key": {"router.cost.x_a__mutmut_1": 2.0}}


def _write(root: Path, text: str) -> Path:
    meta = root / "mutants" / "router" / "cost.py.meta"
    meta.parent.mkdir(parents=True)
    meta.write_text(text)
    (root / "mutants" / "router" / "cost.py").write_text("# mutated copy\n")
    return meta


def test_a_truncated_meta_is_read_as_incomplete_with_its_results_salvaged(tmp_path: Path) -> None:
    text = json.dumps(FULL, indent=4)
    meta = full_run.read_meta(_write(tmp_path, text[: text.index('"estimated_durations_by_key"') + 40]))
    assert meta is not None and not meta.complete
    assert "JSONDecodeError" in meta.problem
    assert meta.codes == CODES


def test_a_complete_meta_and_a_missing_one(tmp_path: Path) -> None:
    meta = full_run.read_meta(_write(tmp_path, json.dumps(FULL, indent=4)))
    assert meta is not None and meta.complete and meta.codes == CODES
    assert full_run.read_meta(tmp_path / "nothing.meta") is None


def test_report_only_marks_the_module_incomplete_instead_of_crashing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = json.dumps(FULL, indent=4)
    _write(tmp_path, text[: len(text) // 3 * 2])
    monkeypatch.setattr(full_run, "workdir", lambda module: tmp_path)
    monkeypatch.setattr(full_run, "broad_kills", lambda module: set())
    monkeypatch.setattr(full_run, "diff_of", lambda module, name: "-a\n+b")
    out = full_run.report(["router/cost.py"])
    row = next(line for line in out.splitlines() if line.startswith("| `router/cost.py`"))
    assert "(incomplete)" in row
    assert "| 3 | 1 | 0 | 1 | 0 | 0 | 1 | 0 |" in row  # 3 mutants, 1 killed, none by the broad pass, 1 survived, 1 not run
    assert "**incomplete** mutmut results" in out


def test_report_only_lists_an_unreadable_meta_as_incomplete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, '{\n    "exit_code_by_key": {\n        "router.cost.x')
    monkeypatch.setattr(full_run, "workdir", lambda module: tmp_path)
    out = full_run.report(["router/cost.py"])
    assert "| `router/cost.py` | incomplete (unreadable results) |" in out


def test_repair_keeps_salvaged_results_in_a_meta_mutmut_can_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_module = pytest.importorskip("mutmut.mutation.data")  # the optional [mutation] extra

    text = json.dumps(FULL, indent=4)
    path = _write(tmp_path, text[: text.index('"estimated_durations_by_key"') + 40])
    notes = full_run.repair_metas(tmp_path)
    assert len(notes) == 1 and "kept its 3 results (2 run)" in notes[0]
    assert path.with_name("cost.py.meta.broken").read_text() == text[: text.index('"estimated_durations_by_key"') + 40]
    monkeypatch.chdir(tmp_path)
    data = data_module.SourceFileMutationData(path=Path("router/cost.py"))
    data.load()  # mutmut's own loader: the next `mutmut run` starts instead of crashing
    assert data.exit_code_by_key == CODES and data.hash_by_function_name == {"x_a": "abc"}
    assert full_run.repair_metas(tmp_path) == []


def test_repair_moves_an_unsalvageable_meta_aside_so_mutmut_regenerates_the_module(tmp_path: Path) -> None:
    path = _write(tmp_path, '{\n    "exit_code_by_key": {\n        "router.cost.x')
    notes = full_run.repair_metas(tmp_path)
    assert len(notes) == 1 and "regenerated" in notes[0]
    assert not path.exists() and not path.with_name("cost.py").exists()
    assert path.with_name("cost.py.meta.broken").exists()
    assert os.listdir(path.parent) == ["cost.py.meta.broken"]


def _capture_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    monkeypatch.setattr(full_run, "ROOT", tmp_path)
    monkeypatch.setattr(full_run, "workdir", lambda module: tmp_path)
    monkeypatch.setattr(full_run, "_git", lambda *args, **kw: "")
    monkeypatch.setattr(full_run.subprocess, "call", lambda cmd, **kw: calls.append(cmd) or 0)
    return calls


def test_missing_only_names_just_the_mutants_without_a_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # mutmut re-runs every mutant a pattern matches, even one with a stored result
    _write(tmp_path, json.dumps(FULL, indent=4))
    calls = _capture_run(tmp_path, monkeypatch)
    full_run.run_module("router/cost.py", "mutmut", rerun=False, missing=True)
    assert calls == [["nice", "-n", "19", "mutmut", "run", "router.cost.x_a__mutmut_3"]]
    full_run.run_module("router/cost.py", "mutmut", rerun=False)
    assert calls[1] == ["nice", "-n", "19", "mutmut", "run", "router.cost.*"]


def test_a_sample_is_reproducible_and_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    many = {f"router.cost.x_a__mutmut_{i}": None for i in range(1, 101)}
    _write(tmp_path, json.dumps({**FULL, "exit_code_by_key": many}, indent=4))
    calls = _capture_run(tmp_path, monkeypatch)
    full_run.run_module("router/cost.py", "mutmut", rerun=False, sample=10, seed=3)
    full_run.run_module("router/cost.py", "mutmut", rerun=False, sample=10, seed=3)
    assert len(calls[0]) == 5 + 10 and calls[0] == calls[1] and set(calls[0][5:]) <= set(many)
    recorded = json.loads(full_run._commits_file(tmp_path).read_text())["router/cost.py"]
    assert recorded["sample"] == {"size": 10, "seed": 3, "sizes": [10, 10]}


def test_a_sample_in_a_fresh_copy_generates_the_mutants_first_and_never_runs_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No .meta yet (a new worktree, the broad profile's first run): the sample would be empty, and mutmut
    # given no names runs every mutant of every module. The harness generates first (a name matching none).
    calls: list[list[str]] = []
    monkeypatch.setattr(full_run, "ROOT", tmp_path)
    monkeypatch.setattr(full_run, "workdir", lambda module: tmp_path)
    monkeypatch.setattr(full_run, "_git", lambda *args, **kw: "")

    def call(cmd: list[str], **kw: object) -> int:
        calls.append(cmd)
        if len(calls) == 1:  # mutmut generated the mutants (and stopped on "nothing matches")
            _write(tmp_path, json.dumps({**FULL, "exit_code_by_key": {f"router.cost.x_a__mutmut_{i}": None for i in range(1, 51)}}, indent=4))
        return 0

    monkeypatch.setattr(full_run.subprocess, "call", call)
    full_run.run_module("router/cost.py", "mutmut", rerun=False, sample=10, seed=3)
    assert calls[0] == ["nice", "-n", "19", "mutmut", "run", "router.cost.__generate_only__"]
    assert len(calls) == 2 and len(calls[1]) == 5 + 10 and all(n.startswith("router.cost.x_a__mutmut_") for n in calls[1][5:])


def test_a_sample_with_nothing_to_draw_from_stops_instead_of_running_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _capture_run(tmp_path, monkeypatch)  # the generation step leaves no .meta (mutmut failed)
    with pytest.raises(SystemExit, match="no mutants of router/cost.py to sample from"):
        full_run.run_module("router/cost.py", "mutmut", rerun=False, sample=10, seed=3)
    assert calls == [["nice", "-n", "19", "mutmut", "run", "router.cost.__generate_only__"]]


def test_rerun_listed_runs_the_named_mutants_of_each_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, json.dumps(FULL, indent=4))
    calls = _capture_run(tmp_path, monkeypatch)
    listed = tmp_path / "killed-x.txt"
    listed.write_text("router.cost.x_a__mutmut_2\ttests/catalog/test_x.py::test_y\nrouter.cost.x_gone__mutmut_1\tt\n"
                      "router.other.x__mutmut_1\tt\n\nrouter.cost.x_a__mutmut_2\tagain\n")
    out = full_run.run_listed([str(listed)], "mutmut")
    assert calls == [["nice", "-n", "19", "mutmut", "run", "router.cost.x_a__mutmut_2"]]
    assert out == {"router.cost.x_a__mutmut_2": (0, 0)}


def test_data_files_are_synced_into_mutants_but_mutated_sources_are_not(tmp_path: Path) -> None:
    """mutmut copies the Lua scripts into mutants/ once; a script changed since must reach the next run."""
    (tmp_path / "pyproject.toml").write_text('[tool.mutmut]\nalso_copy = [\n    "policies/",\n]\n')
    lua = tmp_path / "router" / "ledger" / "lua" / "settle.lua"
    lua.parent.mkdir(parents=True)
    lua.write_text("return 2\n")
    (tmp_path / "router" / "cost.py").write_text("X = 1\n")
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "demo.yaml").write_text("version: 1\n")
    assert full_run.sync_data_files(tmp_path) == []  # no mutants/ yet: mutmut copies everything itself

    stale = tmp_path / "mutants" / "router" / "ledger" / "lua" / "settle.lua"
    stale.parent.mkdir(parents=True)
    stale.write_text("return 1\n")
    mutated = tmp_path / "mutants" / "router" / "cost.py"
    mutated.write_text("X = 2  # a mutant\n")
    written = full_run.sync_data_files(tmp_path)
    assert sorted(written) == [os.path.join("policies", "demo.yaml"), os.path.join("router", "ledger", "lua", "settle.lua")]
    assert stale.read_text() == "return 2\n"
    assert (tmp_path / "mutants" / "policies" / "demo.yaml").read_text() == "version: 1\n"
    assert mutated.read_text() == "X = 2  # a mutant\n"  # mutmut's mutated copy is never overwritten
    assert full_run.sync_data_files(tmp_path) == []  # up to date: nothing written again
