"""mutmut results kept in the repository, so a run stopped on one machine goes on on another.

mutmut keeps its results in ``mutants/<module>.meta`` (git-ignored): a fresh clone, a new worktree or a new
machine starts from nothing, and a module whose full run takes longer than one sitting (``deferred.py``,
``_client.py``: ~1,700-1,900 mutants each) could never be finished. ``save`` copies a module's results into
``bench/mutation/results/<module>.json`` with the hash mutmut computed for each function's source;
``restore`` puts a stored result back into a fresh ``.meta`` only where the function's hash is unchanged
(the same test as mutmut's own cache: a changed function's mutants are renumbered and run again).

A restored result is the verdict of the suite *as it was* when it was stored: a test added since can only
kill more, so a stored "killed" stays valid and a stored "survived" is re-checked by ``--rerun-listed`` once
its verdict is ``killed-later``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

STORE = Path(__file__).with_name("results")  # the default: this checkout's bench/mutation/results


def path_for(dotted: str, store: Path = STORE) -> Path:
    return store / f"{dotted}.json"


def function_of(key: str, dotted: str) -> str:
    """``router.cost.x_bill__mutmut_3`` -> ``x_bill`` (the key of ``hash_by_function_name``)."""
    return key[len(dotted) + 1 :].rsplit("__mutmut_", 1)[0]


def save(dotted: str, meta: dict, commit: str, profile: str, store: Path = STORE) -> int:
    """Store the results of ``meta`` (a mutmut ``.meta`` object) that have a verdict; returns how many.

    Results stored earlier for mutants this meta has not run (same function hash) are kept."""
    hashes: dict[str, str] = meta.get("hash_by_function_name", {})
    codes = {k: v for k, v in meta.get("exit_code_by_key", {}).items() if v is not None}
    commits = dict.fromkeys(codes, commit)
    old = load(dotted, store)
    if old is not None:
        for key, code in old["exit_code_by_key"].items():
            fn = function_of(key, dotted)
            if fn not in hashes or old["hash_by_function_name"].get(fn) != hashes[fn]:
                continue  # the function changed since: its stored results are for other mutants
            if key not in codes:
                codes[key] = code
            if codes[key] == code:  # restored from the store (or measured again with the same result)
                commits[key] = old["commits"].get(key, commit)
    store.mkdir(parents=True, exist_ok=True)
    data = {
        "module": dotted,
        "profile": profile,
        "saved": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "hash_by_function_name": {fn: h for fn, h in sorted(hashes.items())},
        "exit_code_by_key": dict(sorted(codes.items())),
        # the commit each result was measured on (a result restored from an earlier run keeps its own)
        "commits": _compress(commits),
    }
    path_for(dotted, store).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return len(codes)


def load(dotted: str, store: Path = STORE) -> dict | None:
    try:
        data = json.loads(path_for(dotted, store).read_text())
    except FileNotFoundError:
        return None
    data["commits"] = _expand(data.get("commits", {}))
    return data


def restore(dotted: str, meta_path: Path, store: Path = STORE) -> tuple[int, dict[str, int]]:
    """Fill the results missing from ``meta_path`` with stored ones of unchanged functions.

    Returns how many were restored and, per commit, how many restored results were measured on it."""
    stored = load(dotted, store)
    if stored is None or not meta_path.exists():
        return 0, {}
    meta = json.loads(meta_path.read_text())
    hashes: dict[str, str] = meta.get("hash_by_function_name", {})
    codes: dict[str, int | None] = meta.get("exit_code_by_key", {})
    restored: dict[str, int] = {}
    for key, code in stored["exit_code_by_key"].items():
        fn = function_of(key, dotted)
        if key in codes and codes[key] is None and fn in hashes and stored["hash_by_function_name"].get(fn) == hashes[fn]:
            codes[key] = code
            commit = stored["commits"].get(key, "?")
            restored[commit] = restored.get(commit, 0) + 1
    if restored:
        meta["exit_code_by_key"] = codes
        meta_path.write_text(json.dumps(meta, indent=4))
    return sum(restored.values()), restored


def _compress(commits: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, commit in sorted(commits.items()):
        out.setdefault(commit, []).append(key)
    return out


def _expand(commits: dict[str, list[str]]) -> dict[str, str]:
    return {key: commit for commit, keys in commits.items() for key in keys}
