"""Operating commands: ``router policy history|rollback``, ``router metrics``, ``router monitor``."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from router.burn import burn_projection, format_usd, window_bounds
from router.cli._output import cli_errors, fail, print_json

policy_app = typer.Typer(help="Policy versions: list what served, roll back to an earlier one.", no_args_is_help=True)

PolicyFile = Annotated[Path, typer.Argument(help="The policy YAML file a Router watches.")]
StoreUrl = Annotated[str, typer.Option("--store", help="Ledger URL: memory://, redis://host:port/db, rediss://, redis+cluster://")]
Prefix = Annotated[str, typer.Option("--prefix", help="Ledger key prefix (the Router's key_prefix).")]


def _validator(path: Path):
    from router.catalog import default_catalog
    from router.policy import compile_policy, load_policy

    catalog = default_catalog()
    return lambda text: compile_policy(load_policy(text, catalog, filename=str(path)), catalog)


OptionalStore = Annotated[Optional[str], typer.Option("--store", help="Shared policies: the ledger URL the Routers use (policy=\"store:NAME\").")]
PolicyName = Annotated[str, typer.Option("--name", help="Shared policy name (Routers use policy=\"store:NAME\").")]


async def _shared(store_url: str, prefix: str, action: Any) -> Any:
    from router.ledger import store_from_url

    store = store_from_url(store_url, prefix=prefix)
    try:
        return await action(store)
    finally:
        await store.close()


@policy_app.command("publish")
def policy_publish(
    path: Annotated[Optional[Path], typer.Argument(help="The policy YAML to publish (validated first).")] = None,
    store: OptionalStore = None,
    name: PolicyName = "default",
    version: Annotated[Optional[str], typer.Option("--version", help="Re-publish this earlier version from the ledger (a rollback).")] = None,
    prefix: Annotated[str, typer.Option("--prefix")] = "router",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Publish a policy to the ledger: every Router with policy="store:NAME" switches to it together."""
    from router._reload import policy_version

    if store is None:
        fail("--store is required: the ledger the Routers share")
    if (path is None) == (version is None):
        fail("give a policy FILE to publish, or --version V to re-publish an earlier one")

    async def action(ledger: Any) -> dict[str, Any]:
        if path is not None:
            if not path.is_file():
                fail(f"{path}: no such policy file")
            text = path.read_text(encoding="utf-8")
            _validator(path)(text)
            published = policy_version(text)
        else:
            text = await ledger.policy_text(name, version)
            if text is None:
                fail(f"store:{name}: no version {version!r} in the ledger (see `router policy history --store ...`)")
            _validator(Path(f"store:{name}@{version}"))(text)
            published = version
        changed = await ledger.publish_policy(name, published, text)
        return {"name": name, "version": published, "changed": changed}

    with cli_errors():
        result = asyncio.run(_shared(store, prefix, action))
    if as_json:
        print_json(result)
    else:
        typer.echo(f"store:{name}: version {result['version']} {'published' if result['changed'] else 'was already current'}")


@policy_app.command("history")
def policy_history(
    path: Annotated[Optional[Path], typer.Argument(help="The policy YAML file a Router watches.")] = None,
    store: OptionalStore = None,
    name: PolicyName = "default",
    prefix: Annotated[str, typer.Option("--prefix")] = "router",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every version that served: of FILE (oldest first), or of a shared policy in --store (newest first)."""
    from router._reload import list_versions, policy_version

    if store is not None:
        async def action(ledger: Any) -> tuple[Any, Any]:
            return await ledger.policy_version(name), await ledger.policy_history(name)

        with cli_errors():
            current, history = asyncio.run(_shared(store, prefix, action))
        rows = [{"version": v, "published_at": at.isoformat(), "current": v == current and i == 0} for i, (v, at) in enumerate(history)]
        if as_json:
            print_json({"name": name, "current": current, "versions": rows})
        else:
            for row in rows:
                typer.echo(f"{row['version']}  {row['published_at']}{'  current' if row['current'] else ''}")
        return
    if path is None:
        fail("give a policy FILE, or --store URL [--name N] for a shared policy")
    if not path.is_file():
        fail(f"{path}: no such policy file")
    current = policy_version(path.read_text(encoding="utf-8"))
    versions = list_versions(path)
    rows = [{"version": v.version, "saved_at": v.saved_at.isoformat(), "current": v.version == current} for v in versions]
    if as_json:
        print_json({"file": str(path), "current": current, "versions": rows})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{path} (serving {current})")
    table.add_column("version")
    table.add_column("first served (UTC)")
    table.add_column("")
    for row in rows:
        table.add_row(row["version"], row["saved_at"], "current" if row["current"] else "")
    Console().print(table)


@policy_app.command("rollback")
def policy_rollback(
    path: PolicyFile,
    version: Annotated[str, typer.Argument(help="A version id from `router policy history` (a unique prefix is enough).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Restore VERSION of FILE (validated first). Routers watching FILE switch to it within their interval."""
    from router._reload import rollback

    if not path.is_file():
        fail(f"{path}: no such policy file")
    with cli_errors():
        restored = rollback(path, version, _validator(path))
    if as_json:
        print_json({"file": str(path), "restored": restored})
    else:
        typer.echo(f"{path}: restored version {restored}")


# ---------------------------------------------------------------------------------------------- ledger views


def _pools(timezone: str) -> list[Any]:
    from router.catalog import default_catalog
    from router.ledger.quota import quota_pool_from_spec

    return [quota_pool_from_spec(spec, timezone=timezone) for spec in default_catalog().pools.values()]


async def _ledger_state(store_url: str, timezone: str, prefix: str = "router") -> dict[str, Any]:
    """Budgets known to the ledger with their spend, grounding pools and priority ramp, in one dict."""
    from router.ledger import store_from_url

    store = store_from_url(store_url, prefix=prefix)
    try:
        budgets = [info.budget for info in await store.list_scopes()]
        pools = _pools(timezone)
        from router.ledger.ramp import RAMP_BASE_TPM

        snap = await store.snapshot(budgets, pools, list(RAMP_BASE_TPM))
        now = dt.datetime.now(dt.timezone.utc)
        month = now.strftime("%Y-%m")
        pt_totals = [t for t in await store.pt_totals() if t.month == month]
        pt_used = await store.pt_usage(sorted({t.key for t in pt_totals}))
    finally:
        await store.close()
    return {"at": now, "budgets": budgets, "snapshot": snap, "pt_totals": pt_totals, "pt_used": pt_used}


def _pt_rows(state: dict[str, Any], capacities: dict[str, int]) -> list[dict[str, Any]]:
    """Provisioned Throughput per subscription: the 30 s window's adjusted tokens (and utilisation when
    the capacity is known from ``--policy``), this month's served / spilled requests and PT-served share."""
    rows = []
    for t in state.get("pt_totals", []):
        used = state["pt_used"].get(t.key, 0)
        capacity = capacities.get(t.key)
        rows.append(
            {
                "subscription": t.key,
                "window_tokens": used,
                "capacity": capacity,
                "utilisation": (Decimal(used) / capacity).quantize(Decimal("0.0001")) if capacity else None,
                "served": t.served,
                "spilled": t.spilled,
                "served_share": t.served_share.quantize(Decimal("0.0001")),
                "amortised_usd": t.amortised_usd,
                "paygo_avoided_usd": t.paygo_avoided_usd,
            }
        )
    return rows


def _capacities(policy: Path | None) -> dict[str, int]:
    """Capacity per 30 s window of each subscription of ``policy`` active today (empty without one)."""
    if policy is None:
        return {}
    from router.catalog import default_catalog
    from router.policy import load_policy
    from router.provisioned import active_subscriptions

    catalog = default_catalog()
    with cli_errors():
        loaded = load_policy(policy, catalog)
    today = dt.datetime.now(dt.timezone.utc).date()
    return {sub.key: sub.capacity for sub in active_subscriptions(loaded.provisioned.subscriptions, catalog, today).values()}


def _budget_rows(state: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    now = state["at"]
    for budget in state["budgets"]:
        spend = state["snapshot"].spend.get(budget.id, Decimal(0))
        start, end = window_bounds(budget.window, now)
        per_hour, projected = burn_projection(spend, start, end, now)
        rows.append(
            {
                "budget": budget.id,
                "scope": budget.scope,
                "window": str(budget.window),
                "spend_usd": spend,
                "limit_usd": budget.limit_usd,
                "utilisation": (spend / budget.limit_usd).quantize(Decimal("0.0001")) if budget.limit_usd else Decimal(0),
                "burn_usd_per_hour": per_hour.quantize(Decimal("0.000001")),
                "projected_at_window_end_usd": projected.quantize(Decimal("0.01")),
            }
        )
    return rows


def _render(state: dict[str, Any], wide: bool = False, capacities: dict[str, int] | None = None) -> Any:
    """The monitor screen. Ids are never truncated: in a narrow terminal long ids wrap inside their
    column (``--wide`` keeps each on one line and lets the terminal scroll)."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    overflow = "ignore" if wide else "fold"
    budgets = Table(title=f"Budgets at {state['at']:%Y-%m-%d %H:%M:%S} UTC")
    budgets.add_column("budget", overflow=overflow, no_wrap=wide, min_width=12)
    budgets.add_column("spend / limit", overflow="fold")
    budgets.add_column("", min_width=6)
    budgets.add_column("burn /h", overflow="fold")
    budgets.add_column("projected at window end", overflow="fold")
    for row in _budget_rows(state):
        ratio = float(row["utilisation"])
        budgets.add_row(
            row["budget"],
            f"{format_usd(row['spend_usd'])} / {format_usd(row['limit_usd'])}",
            ProgressBar(total=1.0, completed=min(ratio, 1.0), width=None if not wide else 24, complete_style="red" if ratio >= 0.8 else "green"),
            format_usd(row["burn_usd_per_hour"]),
            format_usd(row["projected_at_window_end_usd"]),
        )
    pools = Table(title="Grounding free pools")
    pools.add_column("pool", overflow=overflow, no_wrap=wide, min_width=12)
    for col in ("used", "free", "remaining", "next reset"):
        pools.add_column(col, overflow="fold")
    for usage in state["snapshot"].pools.values():
        pools.add_row(usage.pool_id, f"{usage.used:,}", f"{usage.free_units:,}", f"{usage.remaining:,}", usage.resets_at.isoformat(timespec="minutes"))
    ramp = Table(title="Priority PayGo ramp (tokens in the last minute)")
    for col in ("family", "tokens", "limit"):
        ramp.add_column(col, overflow="fold")
    for usage in state["snapshot"].ramp.values():
        ramp.add_row(usage.family, f"{usage.tokens_last_minute:,}", f"{usage.limit_tpm:,}")
    pt_rows = _pt_rows(state, capacities or {})
    if not pt_rows:
        return Group(budgets, pools, ramp)
    pt = Table(title="Provisioned Throughput (30 s window; this month)")
    pt.add_column("subscription", overflow=overflow, no_wrap=wide, min_width=12)
    for col in ("window tokens", "utilisation", "served", "spilled", "PT share"):
        pt.add_column(col, overflow="fold")
    for row in pt_rows:
        util = "-" if row["utilisation"] is None else f"{row['utilisation'] * 100:.1f}% of {row['capacity']:,}"
        pt.add_row(row["subscription"], f"{row['window_tokens']:,}", util, str(row["served"]), str(row["spilled"]), f"{row['served_share'] * 100:.1f}%")
    return Group(budgets, pools, ramp, pt)


def monitor(
    store: StoreUrl = "memory://",
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between refreshes.")] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="Print one snapshot and exit.")] = False,
    timezone: Annotated[str, typer.Option("--pool-timezone", help="Time zone the grounding pools reset in.")] = "America/Los_Angeles",
    as_json: Annotated[bool, typer.Option("--json", help="Print one snapshot as JSON and exit.")] = False,
    prefix: Prefix = "router",
    wide: Annotated[bool, typer.Option("--wide", help="Keep every id on one line (wider than the terminal if need be) instead of wrapping it.")] = False,
    policy: Annotated[Optional[Path], typer.Option("--policy", help="A policy with Provisioned Throughput subscriptions: shows their capacity and utilisation.")] = None,
) -> None:
    """Live view: budgets filling, burn rate per hour and projected spend at window end, grounding pools, priority ramp,
    Provisioned Throughput (window tokens, utilisation with --policy, spill-overs, PT-served share)."""
    from rich.console import Console
    from rich.live import Live

    capacities = _capacities(policy)

    def read() -> dict[str, Any]:
        with cli_errors():
            return asyncio.run(_ledger_state(store, timezone, prefix))

    if as_json:
        state = read()
        print_json(
            {
                "at": state["at"],
                "budgets": _budget_rows(state),
                "pools": [
                    {"pool": u.pool_id, "used": u.used, "free_units": u.free_units, "remaining": u.remaining, "resets_at": u.resets_at}
                    for u in state["snapshot"].pools.values()
                ],
                "priority": [{"family": u.family, "tokens_last_minute": u.tokens_last_minute, "limit_tpm": u.limit_tpm} for u in state["snapshot"].ramp.values()],
                "provisioned": _pt_rows(state, capacities),
            }
        )
        return
    console = Console(width=max(Console().width, 160)) if wide else Console()
    if once:
        console.print(_render(read(), wide, capacities))
        return
    with Live(_render(read(), wide, capacities), console=console, refresh_per_second=4) as live:
        try:
            while True:
                time.sleep(interval)
                live.update(_render(read(), wide, capacities))
        except KeyboardInterrupt:
            pass


def metrics(
    store: StoreUrl = "memory://",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 9464,
    addr: Annotated[str, typer.Option("--addr", help="Address to bind: loopback by default; pass 0.0.0.0 to serve every interface (in a container).")] = "127.0.0.1",
    policy: Annotated[Optional[Path], typer.Option("--policy", help="Watch this policy file and export its version and reload status.")] = None,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between ledger refreshes.")] = 5.0,
    timezone: Annotated[str, typer.Option("--pool-timezone")] = "America/Los_Angeles",
    prefix: Prefix = "router",
) -> None:
    """Serve Prometheus /metrics with the ledger's budgets, grounding pools and priority ramp (standalone exporter)."""
    from router.metrics import RouterMetrics, serve_metrics

    registry = RouterMetrics()
    watcher = None
    if policy is not None:
        from router._reload import PolicyWatcher

        validate = _validator(policy)
        with cli_errors():
            watcher = PolicyWatcher(policy, lambda text, name: validate(text), on_reload=lambda ok, v, e: registry.record_policy_reload(ok, v))
        registry.record_policy_reload(True, watcher.version)
    capacities = _capacities(policy)  # Provisioned Throughput utilisation needs the subscriptions
    serve_metrics(registry, port, addr)
    typer.echo(f"serving http://{addr}:{port}/metrics from {store}")
    try:
        while True:
            if watcher is not None:
                watcher.check()
            try:
                state = asyncio.run(_ledger_state(store, timezone, prefix))
            except Exception as exc:  # noqa: BLE001 - an exporter keeps serving and counts the failure
                registry.record_store_error("snapshot")
                typer.echo(f"warning: ledger read failed: {exc}", err=True)
            else:
                registry.set_ledger(state["budgets"], state["snapshot"], state["at"])
                for row in state["pt_totals"]:
                    registry.set_pt(row.key, state["pt_used"].get(row.key, 0), capacities.get(row.key, 0), row)
            time.sleep(interval)
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    """Attach these commands to the ``router`` app."""
    app.add_typer(policy_app, name="policy")
    app.command("monitor")(monitor)
    app.command("metrics")(metrics)
