"""Full mutmut run of the money path, module by module, with a per-module table and every survivor's verdict.

    python -m bench.mutation.full_run                         # every module, in the order below
    python -m bench.mutation.full_run --modules router/cost.py router/policy/units.py
    python -m bench.mutation.full_run --report-only           # rewrite the report from the stored results
    python -m bench.mutation.full_run --out docs/mutation-full-run.md

Each module is run with ``nice -n 19 mutmut run "<module>.*"`` (mutmut's cache keeps earlier verdicts of
functions that did not change; ``--rerun`` forgets a module's verdicts first). mutmut runs, for each mutant,
only the tests whose stats run reached the mutated function, with the pytest arguments of ``[tool.mutmut]``
(the fast in-process tests). Modules whose real tests go through litellm (``router/_client.py``) are run in
a separate copy of the repository (``.mutation-runs/<profile>/``, git-ignored) whose ``pytest_add_cli_args``
also select the ``litellm`` tests: a change of those arguments would otherwise reset every cached verdict.

The report (``--out``) has one row per module (mutants, killed, survived, no test, timeout, not run, score,
commit measured) and every survivor with its diff and its verdict from ``bench/mutation/verdicts.tsv``
(``equivalent`` / ``wording`` / ``gap`` / ``killed-later``, with a reason; unlisted survivors are shown as
``unclassified``). Scores: raw = (killed + timeout) / (mutants with a result), then without the equivalent
mutants, then without the equivalent and the wording-only ones.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench.mutation import stored

ROOT = Path(__file__).resolve().parents[2]
VERDICTS = Path(__file__).with_name("verdicts.tsv")

# In the order they are measured: small, stable money-path modules first; the big ones that change often last.
MODULES = [
    "router/cost.py",
    "router/policy/units.py",
    "router/ledger/windows.py",
    "router/policy/selection.py",
    "router/_transport/usage.py",
    "router/policy/decide.py",
    "router/policy/compile.py",
    "router/ledger/memory.py",
    "router/ledger/wal.py",
    "router/ledger/redis_store.py",
    "router/ledger/deferred.py",
    "router/_client.py",
]

# The broad profile: the fast set plus the litellm-through-VertexStub tests and the CLI / proxy tests
# (`router cost` prints the bill and its errors; the proxy hook bills through litellm). Still without the process-spawning (slow) and real-redis tests:
# those start processes or a redis-server per mutant. profile -> (marker expression, extra test directories).
PROFILES = {"broad": ("not slow and not redis_server", ["tests/cli", "tests/proxy"])}
# Modules whose real tests are mostly litellm + VertexStub ones: measured in the broad profile only.
PROFILE_OF = {"router/_client.py": "broad"}

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", 37: "killed", None: "not run"}


@dataclass
class Meta:
    """What a mutmut ``.meta`` file says, read without ever raising.

    ``complete`` is False when the file is truncated or not JSON (mutmut writes it in place, so a run stopped
    while it saved leaves half a file); ``codes`` then holds whatever ``exit_code_by_key`` could be salvaged
    (mutmut writes that section first) and ``problem`` says what was wrong."""

    codes: dict[str, int | None]
    complete: bool = True
    problem: str = ""
    sections: dict[str, dict] | None = None


_SECTIONS = ("exit_code_by_key", "hash_by_function_name", "type_check_error_by_key", "durations_by_key",
             "estimated_durations_by_key")


def read_meta(path: Path) -> Meta | None:
    """The meta file at ``path`` (None when there is none); a broken file gives a ``Meta`` with ``complete`` False."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Meta({}, False, f"unreadable: {exc}", {})
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("exit_code_by_key", {}), dict):
            raise ValueError("not a mutmut meta object")
        return Meta(data.get("exit_code_by_key", {}), True, "", data)
    except ValueError as exc:
        problem = f"{type(exc).__name__}: {exc}"
    # Salvage each top-level section that is complete: "<key>": {...} at the object's first level.
    sections: dict[str, dict] = {}
    decoder = json.JSONDecoder()
    for match in re.finditer(r'^ {4}"(\w+)": ', text, re.M):
        try:
            value, _ = decoder.raw_decode(text, match.end())
        except ValueError:
            continue
        if isinstance(value, dict):
            sections[match.group(1)] = value
    return Meta(sections.get("exit_code_by_key", {}), False, problem, sections)


def repair_metas(where: Path) -> list[str]:
    """Make every broken ``.meta`` under ``where/mutants`` loadable again, so ``mutmut run`` does not crash on it.

    The broken file is kept as ``<name>.meta.broken``. When its results and function hashes could be salvaged
    they are written back (those mutants keep their verdicts); otherwise the meta and the mutated copy of the
    source are moved aside, so mutmut regenerates the module and runs all its mutants again."""
    notes = []
    for meta_path in sorted((where / "mutants").rglob("*.py.meta")):
        meta = read_meta(meta_path)
        if meta is None or meta.complete:
            continue
        shutil.copyfile(meta_path, meta_path.with_name(meta_path.name + ".broken"))
        sections = meta.sections or {}
        if "exit_code_by_key" in sections and "hash_by_function_name" in sections:
            fixed = {key: sections.get(key, {}) for key in _SECTIONS}
            meta_path.write_text(json.dumps(fixed, indent=4))
            notes.append(f"{meta_path}: was incomplete ({meta.problem}); kept its {len(meta.codes)} results "
                         f"({sum(v is not None for v in meta.codes.values())} run), the rest is run again")
        else:
            meta_path.unlink()
            mutated = meta_path.with_name(meta_path.name[: -len(".meta")])
            if mutated.exists():
                mutated.unlink()
            notes.append(f"{meta_path}: was incomplete ({meta.problem}) and nothing could be salvaged; "
                         "the module is regenerated and run again")
    return notes


def sync_data_files(where: Path) -> list[str]:
    """Bring the non-Python files of ``where/mutants`` up to date with ``where`` before a run.

    mutmut copies the package's data files (``router/ledger/lua/*.lua``, ``router/_data``) and the
    ``also_copy`` folders into ``mutants/`` once, when it first generates mutants, and never again: after a Lua
    script changed, every mutant ran against the old script (or the clean run failed outright). Only files that
    are not ``.py`` under ``router/`` are synced (the ``.py`` ones there are mutmut's mutated copies); the
    ``also_copy`` folders are synced whole. Returns the paths written."""
    mutants = where / "mutants"
    if not mutants.is_dir():
        return []  # mutmut has not generated anything yet: it copies everything itself
    pyproject = where / "pyproject.toml"
    text = pyproject.read_text() if pyproject.is_file() else ""
    setting = re.search(r"^also_copy\s*=\s*\[(.*?)\]", text, re.M | re.S)
    also_copy = re.findall(r'"([^"]+)"', setting.group(1)) if setting else []
    written = []
    for top in ["router", *also_copy]:
        source = where / top
        files = [source] if source.is_file() else sorted(f for f in source.rglob("*") if f.is_file()) if source.is_dir() else []
        for path in files:
            rel = path.relative_to(where)
            if (top == "router" and path.suffix == ".py") or "__pycache__" in rel.parts:
                continue
            target = mutants / rel
            if target.is_file() and target.read_bytes() == path.read_bytes():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            written.append(str(rel))
    return written


def dotted(module: str) -> str:
    return module[: -len(".py")].replace("/", ".")


def workdir(module: str) -> Path:
    profile = PROFILE_OF.get(module)
    return ROOT if profile is None else ROOT / ".mutation-runs" / profile


def _git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def prepare_profile(profile: str) -> Path:
    """(Re)create the profile's copy of HEAD, with its own marker expression, keeping its mutants/ cache."""
    where = ROOT / ".mutation-runs" / profile
    where.mkdir(parents=True, exist_ok=True)
    for entry in where.iterdir():
        if entry.name != "mutants":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    pyproject = where / "pyproject.toml"
    text = pyproject.read_text()
    markers, extra = PROFILES[profile]
    text, n = re.subn(r'(pytest_add_cli_args = \[.*"-m", )"[^"]*"', lambda m: f'{m.group(1)}"{markers}"', text)
    text, k = re.subn(r'(pytest_add_cli_args_test_selection = \[)(.*)\]',
                      lambda m: m.group(1) + m.group(2) + "".join(f', "{d}"' for d in extra) + "]", text)
    if n != 1 or k != 1:
        raise SystemExit("full_run: cannot find pytest_add_cli_args / _test_selection in [tool.mutmut]")
    pyproject.write_text(text)
    return where


MAX_CHILDREN: int | None = None  # --max-children: overrides [tool.mutmut] max_children (2) for every mutmut run


def _run() -> list[str]:
    """``run`` plus ``--max-children N`` when one was given (one child on a VM shared by several workers)."""
    return ["run"] if MAX_CHILDREN is None else ["run", "--max-children", str(MAX_CHILDREN)]


def _commits_file(where: Path) -> Path:
    return where / "mutants" / "full_run_commits.json"


def sample_names(module: str, size: int, seed: int) -> list[str]:
    """A reproducible random sample of ``module``'s mutants (from the names mutmut generated last)."""
    import random

    names = sorted(results(module))
    return names if len(names) <= size else sorted(random.Random(seed).sample(names, size))


def _sizes(sample: dict | None) -> list[int]:
    """The sizes of the samples run before (a record from before ``sizes`` existed has only ``size``)."""
    if not sample:
        return []
    return list(sample.get("sizes", [sample["size"]] if "size" in sample else []))


def _generate(module: str, mutmut: str, where: Path, out: IO[str]) -> None:
    """Have mutmut generate the module's mutants (and collect its stats) without running any: a pattern that
    matches no mutant, so it stops on "nothing matches"."""
    subprocess.call(["nice", "-n", "19", mutmut, *_run(), dotted(module) + ".__generate_only__"], cwd=where,
                    stdout=out, stderr=subprocess.STDOUT)


def run_module(module: str, mutmut: str, rerun: bool, sample: int = 0, seed: int = 12, missing: bool = False) -> None:
    where = workdir(module)
    if where != ROOT:
        prepare_profile(PROFILE_OF[module])
    for note in repair_metas(where):
        print(note, flush=True)
    for rel in sync_data_files(where):
        print(f"synced into mutants/: {rel}", flush=True)
    if rerun:
        meta_path = where / "mutants" / (module + ".meta")
        meta = read_meta(meta_path)
        if meta is not None and meta.sections is not None:
            data = {key: meta.sections.get(key, {}) for key in _SECTIONS}
            data["exit_code_by_key"] = dict.fromkeys(meta.codes)
            meta_path.write_text(json.dumps(data, indent=4))
    started, commit = time.monotonic(), _git("rev-parse", "--short", "HEAD")
    restored: dict | None = None
    log = ROOT / ".mutation-runs" / f"{dotted(module)}.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as out:
        meta_path = where / "mutants" / (module + ".meta")
        kept = stored.path_for(dotted(module), _store())
        if not rerun and kept.exists() and not any(v is not None for v in results(module).values()):
            # Results kept in the repository (bench/mutation/results/) from an earlier run, maybe on another
            # machine: generate the mutants, then put back the results of every function that did not change.
            if not results(module):
                _generate(module, mutmut, where, out)
            count, by_commit = stored.restore(dotted(module), meta_path, _store())
            if count:
                restored = {"count": count, "by_commit": by_commit}
                missing = True  # mutmut would run a named mutant again even with a result
                print(f"{module}: restored {count} results of unchanged functions from "
                      f"{kept.relative_to(ROOT)} (measured on {', '.join(sorted(by_commit))})",
                      flush=True)
        if sample and not results(module):
            # A sample is drawn from the names mutmut generated: in a fresh copy (a new worktree, the broad
            # profile's first run) there are none yet, and an empty name list would make mutmut run every
            # mutant. Generate them first.
            _generate(module, mutmut, where, out)
        targets = sample_names(module, sample, seed) if sample else [dotted(module) + ".*"]
        if sample and not targets:
            raise SystemExit(f"full_run: no mutants of {module} to sample from (see {log})")
        # mutmut re-runs every mutant a pattern or name matches, even one with a stored result: --missing-only
        # names just the mutants without a result (a run that was stopped, functions changed since).
        if missing:
            targets = [k for k in (targets if sample else results(module)) if results(module).get(k) is None]
            if not targets:
                print(f"{module}: every mutant has a result", flush=True)
                return
        rc = subprocess.call(["nice", "-n", "19", mutmut, *_run(), *targets], cwd=where, stdout=out,
                             stderr=subprocess.STDOUT)
    commits = _commits_file(where)
    data = json.loads(commits.read_text()) if commits.exists() else {}
    previous = data.get(module, {})
    data[module] = {"commit": commit, "dirty": where == ROOT and bool(_git("status", "--porcelain", "router")),  # a profile copy is HEAD itself
                    "seconds": round(time.monotonic() - started), "exit": rc,
                    "profile": PROFILE_OF.get(module, "fast ([tool.mutmut] in pyproject.toml)"),
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if sample:
        data[module]["sample"] = {"size": sample, "seed": seed, "sizes": [*_sizes(previous.get("sample")), sample]}
    if restored is not None:
        data[module]["restored"] = restored
    elif "restored" in previous:
        data[module]["restored"] = previous["restored"]
    commits.write_text(json.dumps(data, indent=1))
    print(f"{module}: mutmut exit {rc} after {data[module]['seconds']} s (log {log})", flush=True)
    save_results(module)


def _store() -> Path:
    return ROOT / "bench" / "mutation" / "results"


def save_results(module: str) -> None:
    """Keep the module's results in the repository (bench/mutation/results/), for a run on another machine."""
    meta = meta_of(module)
    sections = meta.sections if meta is not None else None
    if not sections or "exit_code_by_key" not in sections or "hash_by_function_name" not in sections:
        return  # nothing run, or a broken .meta whose results or function hashes could not be salvaged
    count = stored.save(dotted(module), sections, _git("rev-parse", "--short", "HEAD"),
                        PROFILE_OF.get(module, "fast"), _store())
    print(f"{module}: {count} results kept in {stored.path_for(dotted(module), _store()).relative_to(ROOT)} (commit it)", flush=True)


def module_of(name: str) -> str | None:
    """The MODULES entry a mutant name belongs to (``router.cost.x_f__mutmut_3`` -> ``router/cost.py``)."""
    for module in MODULES:
        if name.startswith(dotted(module) + "."):
            return module
    return None


def run_listed(files: list[str], mutmut: str) -> dict[str, tuple[int | None, int | None]]:
    """Re-run the mutants named in ``files`` (first tab-separated column of each line, e.g. the killed-survivor
    hand-off lists ``mutant<TAB>test id``), each in its module's profile; returns name -> (before, after) codes."""
    names: list[str] = []
    for file in files:
        for line in Path(file).read_text().splitlines():
            name = line.split("\t")[0].strip()
            if name and not name.startswith("#") and name not in names:
                names.append(name)
    by_module: dict[str, list[str]] = {}
    for name in names:
        module = module_of(name)
        if module is None:
            print(f"{name}: not a mutant of a module of this harness, skipped", flush=True)
        elif name not in results(module):
            print(f"{name}: no such mutant in mutmut's results (the function changed since?), skipped", flush=True)
        else:
            by_module.setdefault(module, []).append(name)
    out: dict[str, tuple[int | None, int | None]] = {}
    for module, group in by_module.items():
        before = results(module)
        where = workdir(module)
        if where != ROOT:
            prepare_profile(PROFILE_OF[module])
        for note in repair_metas(where):
            print(note, flush=True)
        for rel in sync_data_files(where):
            print(f"synced into mutants/: {rel}", flush=True)
        log = ROOT / ".mutation-runs" / f"{dotted(module)}.listed.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("w") as handle:
            subprocess.call(["nice", "-n", "19", mutmut, *_run(), *group], cwd=where, stdout=handle, stderr=subprocess.STDOUT)
        after = results(module)
        for name in group:
            out[name] = (before.get(name), after.get(name))
            print(f"{STATUS.get(before.get(name), '?'):9s} -> {STATUS.get(after.get(name), '?'):9s} {name}", flush=True)
        save_results(module)
    return out


def second_pass(module: str, mutmut: str) -> None:
    """Re-run the fast profile's survivors of ``module`` in the broad profile (more tests: litellm, CLI)."""
    names = [k for k, v in results(module).items() if STATUS.get(v, "suspicious") in ("survived", "no tests")]
    if not names or module in PROFILE_OF:
        return
    where = prepare_profile("broad")
    for note in repair_metas(where):
        print(note, flush=True)
    for rel in sync_data_files(where):
        print(f"synced into mutants/: {rel}", flush=True)
    started = time.monotonic()
    log = ROOT / ".mutation-runs" / f"{dotted(module)}.broad.log"
    with log.open("w") as out:
        rc = subprocess.call(["nice", "-n", "19", mutmut, *_run(), *names], cwd=where, stdout=out, stderr=subprocess.STDOUT)
    commits = _commits_file(where)
    data = json.loads(commits.read_text()) if commits.exists() else {}
    data[module + "#second"] = {"commit": _git("rev-parse", "--short", "HEAD"), "mutants": len(names), "exit": rc,
                                "seconds": round(time.monotonic() - started)}
    commits.write_text(json.dumps(data, indent=1))
    print(f"{module}: second pass of {len(names)} survivors in the broad profile, exit {rc}", flush=True)


def broad_kills(module: str) -> set[str]:
    """Mutants of ``module`` the broad profile's second pass killed."""
    if module in PROFILE_OF:
        return set()
    meta = read_meta(ROOT / ".mutation-runs" / "broad" / "mutants" / (module + ".meta"))
    if meta is None:
        return set()
    codes = meta.codes
    return {k for k, v in codes.items() if STATUS.get(v) in ("killed", "timeout")}


@dataclass
class Verdict:
    kind: str
    reason: str


def load_verdicts() -> dict[str, Verdict]:
    out: dict[str, Verdict] = {}
    if VERDICTS.exists():
        for line in VERDICTS.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, kind, reason = (line.split("\t") + ["", ""])[:3]
                out[name.strip()] = Verdict(kind.strip(), reason.strip())
    return out


def meta_of(module: str) -> Meta | None:
    return read_meta(workdir(module) / "mutants" / (module + ".meta"))


def results(module: str) -> dict[str, int | None]:
    meta = meta_of(module)
    return meta.codes if meta is not None else {}


def diff_of(module: str, name: str) -> str:
    """The mutant's changed lines (``mutmut show``, in-process: one subprocess a survivor is slow)."""
    import os

    from mutmut.mutation.diff_apply import get_diff_for_mutant

    here = os.getcwd()
    os.chdir(workdir(module))
    try:
        text = get_diff_for_mutant(name, path=module)
    except Exception as exc:  # noqa: BLE001 - a report line, not a crash, for a mutant mutmut cannot show
        text = f"(no diff: {exc})"
    finally:
        os.chdir(here)
    return "\n".join(line for line in text.splitlines() if line.startswith(("-", "+")) and not line.startswith(("---", "+++")))


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f} %" if b else "-"


def report(modules: list[str]) -> str:
    verdicts = load_verdicts()
    rows = ["| module | mutants | killed (fast set) | + killed by the broad pass | survived | no test (uncovered) | timeout | "
            "not run | equivalent (justified) | score | score counting justified equivalents | "
            "also without wording / labels (not the target) | commit measured |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    sections: list[str] = []
    totals: Counter[str] = Counter()
    incomplete: list[str] = []
    for module in modules:
        meta = meta_of(module)
        if meta is not None and not meta.complete:
            incomplete.append(f"- `{module}`: **incomplete** mutmut results (its `.meta` file is broken: "
                              f"{meta.problem}); {len(meta.codes)} mutants salvaged, counted below as they stand. "
                              "Re-run the module to complete it.")
            if not meta.codes:
                rows.append(f"| `{module}` | incomplete (unreadable results) | | | | | | | | - | - | - | |")
                continue
        codes = meta.codes if meta is not None else {}
        if not codes:
            continue
        count = Counter(STATUS.get(v, "suspicious") for v in codes.values())
        broad = broad_kills(module)
        left_all = [k for k, v in codes.items() if STATUS.get(v, "suspicious") in ("survived", "no tests", "suspicious")]
        left = [k for k in left_all if k not in broad]
        kinds = Counter(verdicts[k].kind if k in verdicts else "unclassified" for k in left)
        later = kinds["killed-later"]
        detected = count["killed"] + count["timeout"] + (len(left_all) - len(left))
        measured = detected + len(left)
        eq, wording = kinds["equivalent"], kinds["wording"] + kinds["label"]
        commits = json.loads(_commits_file(workdir(module)).read_text()) if _commits_file(workdir(module)).exists() else {}
        info = commits.get(module, {})
        commit = info.get("commit", "?") + (" (+uncommitted)" if info.get("dirty") else "")
        if "restored" in info:
            commit += " (and " + ", ".join(f"{n} results restored from a run on {c}"
                                           for c, n in sorted(info["restored"]["by_commit"].items())) + ")"
        if meta is not None and not meta.complete:
            commit += " (incomplete)"
        profile = f" ({PROFILE_OF[module]} profile)" if module in PROFILE_OF else ""
        if "sample" in info:
            profile += (f" (random samples of {' + '.join(map(str, _sizes(info['sample'])))}, seed {info['sample']['seed']}: "
                        f"{len(codes) - count['not run']} of {len(codes)} run; "
                        "mutmut runs the named mutants in file order, so only a finished sample is unbiased)")
        rows.append(f"| `{module}`{profile} | {len(codes)} | {count['killed']} | {len(left_all) - len(left)} | "
                    f"{sum(STATUS.get(codes[k]) == 'survived' for k in left)} | "
                    f"{sum(STATUS.get(codes[k]) == 'no tests' for k in left)} | {count['timeout']} | {count['not run']} | "
                    f"{eq} | {_pct(detected, measured)} | {_pct(detected + later, measured - eq)} | "
                    f"{_pct(detected + later, measured - eq - wording)} | {commit} |")
        for key, value in (("mutants", len(codes)), ("killed", count["killed"]), ("broad", len(left_all) - len(left)),
                           ("timeout", count["timeout"]), ("left", len(left)), ("not run", count["not run"]),
                           ("measured", measured), ("detected", detected), ("later", later), ("equivalent", eq),
                           ("wording", wording)):
            totals[key] += value
        if left:
            sections.append(f"\n## `{module}`: {len(left)} not killed by the run ("
                            + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + ")\n")
            for name in sorted(left, key=lambda k: (verdicts.get(k, Verdict("unclassified", "")).kind, k)):
                v = verdicts.get(name, Verdict("unclassified", ""))
                status = STATUS.get(codes[name], "suspicious")
                sections.append(f"- `{name}` ({status}) **{v.kind}**: {v.reason}\n\n```diff\n{diff_of(module, name)}\n```\n")
    t = totals
    rows.append(f"| **all** | {t['mutants']} | {t['killed']} | {t['broad']} | {t['left']} (survived + no test) | | "
                f"{t['timeout']} | {t['not run']} | {t['equivalent']} | {_pct(t['detected'], t['measured'])} | "
                f"{_pct(t['detected'] + t['later'], t['measured'] - t['equivalent'])} | "
                f"{_pct(t['detected'] + t['later'], t['measured'] - t['equivalent'] - t['wording'])} | |")
    head = ("# Full mutmut run of the money path\n\nWritten by `python -m bench.mutation.full_run` (see "
            "`bench/mutation/README.md`); verdicts from `bench/mutation/verdicts.tsv`. Raw score: (killed + timeout + "
            "killed by the broad second pass) / mutants with a result. `killed-later`: survived the run, killed by a "
            "test added after it, counted as detected in the two right-hand scores only. `wording`: only an error / "
            "warning text or the field an error names; `label`: only a label of an itemised bill line (its unit, "
            "its free-line name), never an amount.\n")
    notes = ("\n" + "\n".join(incomplete) + "\n") if incomplete else ""
    return head + "\n" + "\n".join(rows) + "\n" + notes + "\n".join(sections)


_MESSAGE_CALL = re.compile(r"raise |Error\(|(rejected|notes|warnings|problems|errors)\.append\(")
_KEY = re.compile(r'^\s*\{?"[A-Za-z_]+": ')


def suggest(module: str) -> list[str]:
    """Verdict lines for the unclassified survivors whose diff only touches a message or a report key.

    Pattern-based and marked ``(pattern)``: a mutant of a string / argument inside a ``raise`` or an
    ``append`` of a reason / note / warning is ``wording``; a renamed key of a ``to_dict`` report is ``label``.
    Everything else is left for a person to read."""
    verdicts, out = load_verdicts(), []
    for name, code in results(module).items():
        if STATUS.get(code) not in ("survived", "no tests") or name in verdicts or name in broad_kills(module):
            continue
        diff = diff_of(module, name).splitlines()
        minus = " ".join(line[1:] for line in diff if line.startswith("-"))
        plus = " ".join(line[1:] for line in diff if line.startswith("+"))
        if (_MESSAGE_CALL.search(minus) and _MESSAGE_CALL.search(plus) and minus.count("raise") == plus.count("raise")
                and ".append(None)" not in plus):
            out.append(f"{name}\twording\t(pattern) only an argument / text of a raised error or of a reason / note appended")
        elif _KEY.search(minus) and re.search(r'"(XX[A-Za-z_]+XX|[A-Z_]+)": ', plus) and "to_dict" in name:
            out.append(f"{name}\tlabel\t(pattern) only a key name of a to_dict() report (explain / decision JSON), not a value")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modules", nargs="+", default=MODULES, help="source paths, in the order to run them")
    ap.add_argument("--report-only", action="store_true", help="do not run mutmut, only write the report")
    ap.add_argument("--rerun", action="store_true", help="forget the modules' cached verdicts first")
    ap.add_argument("--second-pass", action="store_true",
                    help="re-run each module's survivors in the broad profile (litellm + CLI tests) after its run")
    ap.add_argument("--suggest", action="store_true",
                    help="print pattern-based verdict lines (wording / label) for unclassified survivors and exit")
    ap.add_argument("--out", default="docs/mutation-full-run.md")
    ap.add_argument("--sample", type=int, default=0,
                    help="run only a reproducible random sample of this many mutants per module (the rest stay 'not run')")
    ap.add_argument("--seed", type=int, default=12, help="the sample's random seed")
    ap.add_argument("--rerun-listed", nargs="+", metavar="FILE",
                    help="re-run the mutants named in FILE (first tab-separated column a line, e.g. /work/wt/killed-*.txt) and exit")
    ap.add_argument("--missing-only", action="store_true",
                    help="run only the mutants without a stored result (mutmut re-runs every mutant it is named)")
    ap.add_argument("--save-only", action="store_true",
                    help="only copy the modules' mutmut results into bench/mutation/results/ (kept in git) and exit")
    ap.add_argument("--max-children", type=int, default=None,
                    help="mutmut's parallel test processes (default: max_children of [tool.mutmut]; use 1 on a shared VM)")
    args = ap.parse_args(argv)
    global MAX_CHILDREN
    MAX_CHILDREN = args.max_children
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        ap.error(f"not a money-path module of this harness: {', '.join(unknown)} (known: {', '.join(MODULES)})")
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    if args.rerun_listed:
        run_listed(args.rerun_listed, mutmut)
        return 0
    if args.save_only:
        for module in args.modules:
            save_results(module)
        return 0
    if args.suggest:
        for module in args.modules:
            print("\n".join(suggest(module)))
        return 0
    if args.second_pass and args.report_only:
        for module in args.modules:
            second_pass(module, mutmut)
    for module in args.modules:
        if not args.report_only:
            run_module(module, mutmut, args.rerun, args.sample, args.seed, args.missing_only)
            if args.second_pass:
                second_pass(module, mutmut)
        (ROOT / args.out).write_text(report([m for m in args.modules if meta_of(m) is not None]))
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
