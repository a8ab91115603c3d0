"""A small textual mutation harness: apply one mutation at a time to a source file, run the tests that must
catch it, restore the file, and report which mutations survived.

    python -m bench.mutation.textual lua          # router/ledger/lua/*.lua against the real-redis ledger tests
    python -m bench.mutation.textual survivors    # issue 12's surviving mutations (regression list)
    python -m bench.mutation.textual lua --only rolling   # the mutations whose name contains "rolling"

A mutation is (name, file, old text, new text, test targets). ``old`` must occur exactly once in the file;
when it does not (the code was refactored), the mutation is reported as "stale" instead of being run, so
the list shows what needs re-anchoring. The file is always restored (also on Ctrl-C), and the harness
refuses to start when a target file has uncommitted changes, so a crash can never leave a mutant behind
unnoticed: ``git diff`` shows it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


@dataclasses.dataclass
class Outcome:
    mutation: Mutation
    status: str  # killed | survived | stale | timeout
    seconds: float
    detail: str = ""


def _dirty(files: set[str]) -> list[str]:
    out = subprocess.run(["git", "status", "--porcelain", "--", *sorted(files)], cwd=ROOT, capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line.strip()]


def run_one(m: Mutation, python: str, timeout: float) -> Outcome:
    path = ROOT / m.file
    original = path.read_text()
    if original.count(m.old) != 1:
        return Outcome(m, "stale", 0.0, f"{original.count(m.old)} occurrences of the original text")
    start = time.monotonic()
    try:
        path.write_text(original.replace(m.old, m.new, 1))
        cmd = [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *m.tests]
        try:
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        except subprocess.TimeoutExpired:
            return Outcome(m, "timeout", time.monotonic() - start, "counted as killed (the tests hang)")
        tail = (proc.stdout.strip().splitlines() or [""])[-1]
        if proc.returncode == 0:
            return Outcome(m, "survived", time.monotonic() - start, tail)
        if proc.returncode in (1,):  # tests failed
            return Outcome(m, "killed", time.monotonic() - start, tail)
        return Outcome(m, "killed", time.monotonic() - start, f"pytest exit {proc.returncode}: {tail}")
    finally:
        path.write_text(original)


def run(mutations: list[Mutation], python: str, timeout: float) -> list[Outcome]:
    files = {m.file for m in mutations}
    dirty = _dirty(files)
    if dirty:
        raise SystemExit("refusing to mutate files with uncommitted changes:\n" + "\n".join(dirty))
    outcomes = []
    for i, m in enumerate(mutations, 1):
        o = run_one(m, python, timeout)
        outcomes.append(o)
        print(f"[{i}/{len(mutations)}] {o.status:8s} {o.seconds:6.1f}s  {m.name}  ({o.detail})", flush=True)
    return outcomes


def summary(outcomes: list[Outcome]) -> str:
    live = [o for o in outcomes if o.status != "stale"]
    killed = sum(o.status in ("killed", "timeout") for o in live)
    lines = [f"{killed}/{len(live)} killed ({100 * killed / len(live):.0f} %)" if live else "no mutation applied"]
    for o in outcomes:
        if o.status in ("survived", "stale"):
            lines.append(f"  {o.status}: {o.mutation.name} [{o.mutation.file}]")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("suite", choices=["lua", "survivors"], help="which mutation list to run")
    ap.add_argument("--only", default="", help="run only the mutations whose name contains this text")
    ap.add_argument("--python", default=sys.executable, help="the interpreter with the project installed")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds before a mutant's test run counts as hung (killed)")
    args = ap.parse_args(argv)
    if args.suite == "lua":
        from bench.mutation.lua_mutations import MUTATIONS
    else:
        from bench.mutation.survivors import MUTATIONS
    chosen = [m for m in MUTATIONS if args.only in m.name]
    outcomes = run(chosen, args.python, args.timeout)
    print(summary(outcomes))
    return 1 if any(o.status == "survived" for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
