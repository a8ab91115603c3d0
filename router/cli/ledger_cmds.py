"""``router spend`` and ``router quota``: read the ledger's spend and quota counters from the shell.

Budgets come from the ledger itself (every reservation records its budgets' limit and window, see
``Store.list_scopes``), optionally joined by the budgets a policy file declares (``--policy``). Quota
pools come from the price catalog (``price_catalog/grounding.yaml``); priority ramp families from the
seed's ramp limits (flash, flash-lite, pro).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from router.cli._output import cli_errors, fail, print_json

StoreOption = Annotated[str, typer.Option("--store", help="Ledger URL: redis://HOST:PORT/DB, rediss://..., redis+cluster://HOST:PORT, fakeredis://NAME, memory://.")]
PrefixOption = Annotated[str, typer.Option("--prefix", help="Ledger key prefix (the Router's key_prefix).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (amounts as exact decimal strings).")]


def _open(url: str, prefix: str) -> Any:
    from router.ledger import store_from_url

    try:
        return store_from_url(url, prefix=prefix)
    except ValueError as exc:
        fail(f"--store: {exc}")


async def _replay_first(url: str, prefix: str, journal: str | None) -> tuple[int, str]:
    """Replay this ledger's fail_open journal (the Router's default path for ``url`` and ``prefix``, or
    ``journal``) before reading, so figures include spend journaled during an outage; returns the events
    still waiting (0 normally) and the journal path."""
    from router.ledger import store_from_url
    from router.ledger.journal import default_journal_path

    path = Path(journal or default_journal_path(url, prefix))
    if not url.lower().startswith(("redis", "rediss", "unix")) or not (path.exists() or any(path.parent.glob(path.name + ".replaying*"))):
        return 0, str(path)
    replayer = store_from_url(url, prefix=prefix, failure_mode="fail_open", journal_path=str(path))
    try:
        await replayer.replay_journal()
        return replayer.journal_backlog(), str(path)
    finally:
        await replayer.close()


def _run(coro: Any) -> Any:
    with cli_errors():
        return asyncio.run(coro)


def _policy_budgets(path: str) -> tuple[list[Any], list[Any]]:
    """The budgets a policy file declares: concrete scopes (``global``, ``tenant:acme``), and templates
    (``tenant`` = one counter per tenant) as ``(kind, tag key, window, limit)`` to match ledger scopes."""
    if not Path(path).is_file():
        fail(f"--policy: no such file {path!r}")
    try:
        from router.policy import compile_policy, load_policy
    except ImportError:
        fail("--policy needs the policy engine (router.policy), which this build does not include")
    from router.catalog import default_catalog
    from router.ledger import BudgetScope

    with cli_errors():
        catalog = default_catalog()
        compiled = compile_policy(load_policy(Path(path), catalog), catalog)
    concrete, templates = [], []
    for b in compiled.budgets:
        if b.kind == "global":
            concrete.append(BudgetScope("global", b.window, b.limit))
        elif b.value is not None:
            concrete.append(BudgetScope(b.fixed_scope(), b.window, b.limit))
        else:
            templates.append((b.kind, b.key, b.window, b.limit))
    return concrete, templates


def _matches(budget: Any, templates: list[Any]) -> bool:
    kind, _, rest = budget.scope.partition(":")
    for t_kind, t_key, window, _limit in templates:
        if kind == t_kind and budget.window == window and (t_kind != "tag" or rest.partition("=")[0] == t_key):
            return True
    return False


def _pct(used: Decimal, limit: Decimal) -> Decimal | None:
    if limit <= 0:
        return None
    return (used * 100 / limit).quantize(Decimal("0.01"))


def spend(
    store: StoreOption,
    scope: Annotated[Optional[str], typer.Option("--scope", help="Only this scope (e.g. tenant:acme; names as given to the Router or encoded, tenant:a/b = tenant:a%2Fb) or budget id (tenant:acme|rolling:24h).")] = None,
    policy: Annotated[Optional[str], typer.Option("--policy", help="Only the budgets this policy file declares (shown even before any spend).")] = None,
    prefix: PrefixOption = "router",
    journal: Annotated[Optional[str], typer.Option("--journal", help="The Router's fail_open journal_path, if not the default: replayed before reading.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Spend per budget scope and window: settled, held, limit, utilisation; and Provisioned Throughput use
    per subscription and month (served, spilled, amortised cost, PayGo avoided). A fail_open journal of this
    ledger (spend made while Redis was unreachable) is replayed first, so the figures include it."""
    from router.cost import fmt

    extra, templates = _policy_budgets(policy) if policy else ([], [])
    waiting: list[tuple[int, str]] = []

    async def collect() -> list[dict[str, Any]]:
        ledger = _open(store, prefix)
        try:
            waiting.append(await _replay_first(store, prefix, journal))
            known = [info.budget for info in await ledger.list_scopes()]
            if policy:  # only this policy's budgets: its concrete scopes, and ledger scopes of its templates
                known = [b for b in known if _matches(b, templates)]
            budgets = {b.id: b for b in known}
            for b in extra:
                budgets[b.id] = b  # the policy's limit wins
            from router.ledger.names import scope_forms

            wanted = scope_forms(scope) if scope is not None else set()
            chosen = [b for bid, b in sorted(budgets.items()) if scope is None or wanted & {b.scope, bid}]
            snap = await ledger.snapshot(chosen, [], [])
            rows = []
            for b in chosen:
                settled = await ledger.spend(b)
                total = snap.spend[b.id]
                rows.append({
                    "kind": "budget",
                    "scope": b.scope,
                    "window": str(b.window),
                    "id": b.id,
                    "limit_usd": b.limit_usd,
                    "spent_usd": settled,
                    "held_usd": max(Decimal(0), total - settled),
                    "remaining_usd": max(Decimal(0), b.limit_usd - total),
                    "utilisation_pct": _pct(total, b.limit_usd),
                })
            if scope is None or scope == "provisioned" or scope.startswith("provisioned:"):
                for t in await ledger.pt_totals():  # Provisioned Throughput: used, not booked in budgets
                    if scope not in (None, "provisioned", f"provisioned:{t.key}"):
                        continue
                    rows.append({
                        "kind": "provisioned",
                        "scope": f"provisioned:{t.key}",
                        "month": t.month,
                        "served_requests": t.served,
                        "spilled_requests": t.spilled,
                        "served_share_pct": (t.served_share * 100).quantize(Decimal("0.1")),
                        "burndown_tokens": t.tokens,
                        "amortised_usd": t.amortised_usd,
                        "paygo_avoided_usd": t.paygo_avoided_usd,
                        "spill_paygo_usd": t.spill_paygo_usd,
                    })
            return rows
        finally:
            await ledger.close()

    rows = _run(collect())
    backlog, journal_path = waiting[0] if waiting else (0, "")
    if backlog:
        typer.echo(f"note: {backlog} spend event(s) journaled during a Redis outage could not be replayed yet and are NOT in these figures (journal {journal_path})", err=True)
    if scope and not rows:
        fail(f"--scope: no budget {scope!r} in the ledger (it appears once a reservation names it)")
    if as_json:
        print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Spend in {store}")
    for column in ("scope", "window", "spent (USD)", "held (USD)", "limit (USD)", "used %"):
        table.add_column(column, justify="left" if column in ("scope", "window") else "right")
    budget_rows = [r for r in rows if r["kind"] == "budget"]
    pt_rows = [r for r in rows if r["kind"] == "provisioned"]
    for r in budget_rows:
        pct = "-" if r["utilisation_pct"] is None else f"{fmt(r['utilisation_pct'])}%"
        table.add_row(r["scope"], r["window"], fmt(r["spent_usd"]), fmt(r["held_usd"]), fmt(r["limit_usd"]), pct)
    Console().print(table if budget_rows else "no budgets in this ledger yet")
    if pt_rows:
        pt_table = Table(title="Provisioned Throughput (PayGo spend above; PT-served requests book $0 in budgets)")
        for column in ("subscription", "month", "served", "spilled", "PT share", "burndown tokens", "amortised (USD)", "PayGo avoided (USD)", "spills PayGo (USD)"):
            pt_table.add_column(column, justify="left" if column in ("subscription", "month") else "right")
        for r in pt_rows:
            pt_table.add_row(
                r["scope"].removeprefix("provisioned:"), r["month"], str(r["served_requests"]), str(r["spilled_requests"]), f"{fmt(r['served_share_pct'])}%",
                f"{r['burndown_tokens']:,}", fmt(r["amortised_usd"]), fmt(r["paygo_avoided_usd"]), fmt(r["spill_paygo_usd"]),
            )
        Console().print(pt_table)


def quota(
    store: StoreOption,
    timezone: Annotated[str, typer.Option("--timezone", help="Reset time zone of the pools (Google's quotas reset at midnight Pacific).")] = "America/Los_Angeles",
    prefix: PrefixOption = "router",
    project: Annotated[Optional[str], typer.Option("--project", help="Google Cloud project of the Count Tokens pool (default: VERTEXAI_PROJECT).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Grounding quota pools (used, free, remaining, next reset), Priority PayGo ramp usage and the
    project's Count Tokens pool (requests in the last minute of its 3,000, and today's counts made,
    cache hits, fallbacks)."""
    from router.catalog import default_catalog
    from router.cost import fmt
    from router.ledger import quota_pool_from_spec
    from router.ledger.ramp import RAMP_BASE_TPM

    with cli_errors():
        specs = list(default_catalog().pools.values())
    try:
        pools = [quota_pool_from_spec(spec, timezone) for spec in specs]
    except ValueError as exc:
        fail(f"--timezone: {exc}")
    families = sorted(RAMP_BASE_TPM)

    import os

    from router.ledger.rate import OUTCOMES, count_tokens_pool

    count_pool = count_tokens_pool(project or os.environ.get("VERTEXAI_PROJECT") or None)

    async def collect() -> Any:
        ledger = _open(store, prefix)
        try:
            return await ledger.snapshot([], pools, families), await ledger.take_rate(count_pool, 0), await ledger.rate_outcomes(count_pool)
        finally:
            await ledger.close()

    snap, count_usage, outcomes = _run(collect())
    count_row = {
        "pool": count_pool.id,
        "used_last_minute": count_usage.used,
        "limit_per_minute": count_usage.limit,
        "remaining": count_usage.remaining,
        "today_utc": {o: outcomes.get(o, 0) for o in OUTCOMES},
    }
    pool_rows = [
        {
            "pool": p.id,
            "period": p.period,
            "timezone": p.timezone,
            "used": snap.pools[p.id].used,
            "free_units": p.free_units,
            "remaining": snap.pools[p.id].remaining,
            "resets_at": snap.pools[p.id].resets_at,
            "effective_from": spec.effective_from,
        }
        for p, spec in zip(pools, specs)
    ]
    ramp_rows = [
        {"family": f, "tokens_last_minute": snap.ramp[f].tokens_last_minute, "limit_tpm": snap.ramp[f].limit_tpm,
         "utilisation_pct": _pct(Decimal(snap.ramp[f].tokens_last_minute), Decimal(snap.ramp[f].limit_tpm))}
        for f in families
    ]
    if as_json:
        print_json({"pools": pool_rows, "priority_ramp": ramp_rows, "count_tokens": count_row})
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"Grounding quota pools in {store}")
    for column in ("pool", "period", "used", "free", "remaining", "next reset"):
        table.add_column(column, justify="left" if column in ("pool", "period", "next reset") else "right")
    for r in pool_rows:
        table.add_row(r["pool"], r["period"], f"{r['used']:,}", f"{r['free_units']:,}", f"{r['remaining']:,}", r["resets_at"].isoformat())
    console.print(table)
    ramp = Table(title="Priority PayGo ramp (last 60 s)")
    for column in ("family", "tokens", "limit TPM", "used %"):
        ramp.add_column(column, justify="left" if column == "family" else "right")
    for r in ramp_rows:
        ramp.add_row(r["family"], f"{r['tokens_last_minute']:,}", f"{r['limit_tpm']:,}", f"{fmt(r['utilisation_pct'])}%")
    console.print(ramp)
    counts = Table(title="Count Tokens (free, 3,000 requests per minute per project)")
    for column in ("pool", "last minute", "limit", "remaining", "counted today", "cache hits", "fallbacks", "not countable"):
        counts.add_column(column, justify="left" if column == "pool" else "right")
    today = count_row["today_utc"]
    counts.add_row(count_row["pool"], f"{count_usage.used:,}", f"{count_usage.limit:,}", f"{count_usage.remaining:,}", f"{today['counted']:,}", f"{today['cache_hit']:,}", f"{today['fallback']:,}", f"{today['unsupported']:,}")
    console.print(counts)


def register(app: typer.Typer) -> None:
    """Add ``spend`` and ``quota`` to ``app``."""
    app.command("spend")(spend)
    app.command("quota")(quota)


def _register_on_main_app() -> None:
    from router.cli import app

    if not any(getattr(c, "name", None) == "spend" for c in app.registered_commands):
        register(app)


_register_on_main_app()
