"""Run mutmut on a reproducible random sample of the money path's mutants and summarise the outcome.

    mutmut run "zzz"                     # once: generates mutants/ (it then stops: nothing matches "zzz")
    python -m bench.mutation.sample_mutmut run --per-module 40 --seed 12
    python -m bench.mutation.sample_mutmut report > /tmp/summary.md

A full mutmut run over every money-path module is thousands of mutants (hours on the shared 2-core VM); a
stratified sample gives each module's score with a known sample size. ``report`` reads mutmut's results
(``mutants/**/*.meta``), prints the score per module over the mutants that were run, and lists every
survivor with its diff, classified as ``message`` (the mutant only changes the wording of an error / warning
/ note, or a dict key of a report) or ``logic`` (everything else: these are the ones to kill or justify).
"""

from __future__ import annotations

import argparse
import random
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from bench.mutation.full_run import read_meta, repair_metas

ROOT = Path.cwd()
KILLED = {1, 3, 36, -24, 24, 152, 255, 37}
SURVIVED = {0}
NO_TESTS = {5, 33}


def _metas() -> dict[str, dict[str, int | None]]:
    """Each module's stored results; a truncated / broken meta file gives what could be salvaged (never a crash)."""
    out = {}
    for path in sorted((ROOT / "mutants").rglob("*.py.meta")):
        module = str(path.relative_to(ROOT / "mutants"))[: -len(".meta")]
        meta = read_meta(path)
        if meta is not None and not meta.complete:
            print(f"{path}: incomplete ({meta.problem}); {len(meta.codes)} results salvaged", file=sys.stderr)
        out[module] = meta.codes if meta is not None else {}
    return out


def sample(per_module: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    names: list[str] = []
    for module, codes in _metas().items():
        keys = sorted(codes)
        names += keys if len(keys) <= per_module else rng.sample(keys, per_module)
    return names


def _diff(name: str, python: str) -> str:
    out = subprocess.run([str(Path(python).with_name("mutmut")), "show", name], cwd=ROOT, capture_output=True, text=True)
    return "\n".join(line for line in out.stdout.splitlines() if line.startswith(("-", "+")) and not line.startswith(("---", "+++")))


_MESSAGE = re.compile(r"(raise |warnings\.append|notes\.append|rejected\.append|f\"|\"XX|XX\"|'XX|XX'|UsageError|Error\(|\.append\(f|\"[A-Z_ ]+\"|: None\)|None, f\")")


def classify(diff: str) -> str:
    minus = [line[1:] for line in diff.splitlines() if line.startswith("-")]
    plus = [line[1:] for line in diff.splitlines() if line.startswith("+")]
    if not minus or not plus:
        return "logic"
    changed = " ".join(plus)
    # a mutant that only touches string literals (XX..XX, UPPER-cased, None for a message) inside a raise /
    # warning / note / report dict is about wording, not money
    if re.search(r"XX|\"[^\"]*[A-Z]{3,}[^\"]*\"", changed) and _MESSAGE.search(" ".join(minus)):
        return "message"
    if _MESSAGE.search(" ".join(minus)) and ("raise" in " ".join(minus) or "append" in " ".join(minus)) and re.search(r"\bNone\b|\(\s*\)|, \)", changed):
        return "message"
    return "logic"


def report(python: str) -> str:
    lines = ["| module | run | killed | survived | no tests | score (killed / run with tests) |", "|---|---|---|---|---|---|"]
    survivors: list[tuple[str, str, str]] = []
    for module, codes in _metas().items():
        run = {k: v for k, v in codes.items() if v is not None}
        if not run:
            continue
        killed = sum(v in KILLED for v in run.values())
        surv = [k for k, v in run.items() if v in SURVIVED]
        none = sum(v in NO_TESTS for v in run.values())
        tested = len(run) - none
        lines.append(f"| `{module}` | {len(run)} of {len(codes)} | {killed} | {len(surv)} | {none} | {100 * killed / tested:.0f} % |" if tested else f"| `{module}` | {len(run)} | 0 | 0 | {none} | - |")
        for name in surv:
            diff = _diff(name, python)
            survivors.append((name, classify(diff), diff))
    lines.append("")
    for kind in ("logic", "message"):
        chosen = [s for s in survivors if s[1] == kind]
        lines.append(f"### Survivors: {kind} ({len(chosen)})\n")
        for name, _, diff in chosen:
            lines.append(f"- `{name}`\n\n```diff\n{diff}\n```\n")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["run", "report"])
    ap.add_argument("--per-module", type=int, default=40)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--python", default=sys.executable)
    args = ap.parse_args(argv)
    if args.action == "run":
        for note in repair_metas(ROOT):
            print(note, flush=True)
        names = sample(args.per_module, args.seed)
        print(f"{len(names)} mutants sampled", flush=True)
        return subprocess.call([str(Path(args.python).with_name("mutmut")), "run", *names], cwd=ROOT)
    print(report(args.python))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
