"""``router replay``: a request log re-decided under another policy: where requests would go, what it would cost."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from router.cli._output import cli_errors, fail, print_json


def replay_command(
    policy: Annotated[Path, typer.Option("--policy", "-p", help="The policy to replay the log under.")],
    log: Annotated[Path, typer.Option("--log", help="A request log (Router(request_log=...) / ROUTER_REQUEST_LOG).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replay a request log under POLICY on a simulated ledger: requests per model, cost logged vs replayed, by tenant."""
    from router.catalog import default_catalog
    from router.policy import compile_policy, load_policy
    from router.replay import read_log, replay

    if not log.is_file():
        fail(f"{log}: no such request log")
    with cli_errors():
        catalog = default_catalog()
        compiled = compile_policy(load_policy(policy, catalog), catalog)
        report = asyncio.run(replay(read_log(log), compiled, catalog)).to_dict()
    if as_json:
        print_json(report)
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"{report['requests']} requests from {log} under {policy}: logged ${report['logged_usd']} -> replayed "
        f"${report['replayed_usd']} ({report['difference_usd']}); {report['changed_model']} change model, {report['refused']} refused"
    )
    models = Table(title="Requests per model")
    for col in ("model", "logged", "replayed"):
        models.add_column(col)
    for model, counts in report["by_model"].items():
        models.add_row(model, str(counts["logged"]), str(counts["replayed"]))
    console.print(models)
    tenants = Table(title="Cost per tenant (USD)")
    for col in ("tenant", "logged", "replayed"):
        tenants.add_column(col)
    for tenant, sums in report["by_tenant"].items():
        tenants.add_row(tenant, sums["logged_usd"], sums["replayed_usd"])
    console.print(tenants)
    console.print(f"[dim]{report['assumption']}[/dim]")


def register(app: typer.Typer) -> None:
    """Attach ``router replay`` to the ``router`` app."""
    app.command("replay")(replay_command)
