"""``router replay``: a request log re-decided under another policy: where requests would go, what it would cost."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Optional

import typer

from router.cli._output import cli_errors, fail, print_json


def _names(policies: list[Path]) -> list[str]:
    """Display names: the file stem, or the path when two policies share a stem."""
    stems = [p.stem for p in policies]
    return [p.stem if stems.count(p.stem) == 1 else str(p) for p in policies]


def replay_command(
    policy: Annotated[list[Path], typer.Option("--policy", "-p", help="A policy to replay the log under (repeat to compare several).")],
    log: Annotated[Path, typer.Option("--log", help="A request log (Router(request_log=...) / ROUTER_REQUEST_LOG).")],
    report_path: Annotated[Optional[Path], typer.Option("--report", help="Write a self-contained HTML what-if report here (needs the [report] extra).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON (one policy: its report; several: {'policies': [...]}).")] = False,
) -> None:
    """Replay a request log under each POLICY on a simulated ledger: requests per model, cost logged vs replayed, by tenant; optionally an HTML report."""
    from router.catalog import default_catalog
    from router.policy import compile_policy, load_policy
    from router.replay import read_log, replay

    if not log.is_file():
        fail(f"{log}: no such request log")
    if report_path is not None:
        from router.report import _pyplot

        with cli_errors():
            _pyplot()  # fail before the replay when the plotting extra is missing
    runs = []
    with cli_errors():
        catalog = default_catalog()
        for path, name in zip(policy, _names(policy)):
            compiled = compile_policy(load_policy(path, catalog), catalog)
            runs.append((path, name, asyncio.run(replay(read_log(log), compiled, catalog))))
        if report_path is not None:
            from router.report import PolicyRun, write_report

            write_report([PolicyRun(name, report) for _, name, report in runs], str(log), report_path)
    if as_json:
        if len(runs) == 1:
            print_json(runs[0][2].to_dict())
        else:
            print_json({"log": str(log), "policies": [{"policy": str(path), "name": name, **report.to_dict()} for path, name, report in runs]})
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for path, _name, replayed in runs:
        report = replayed.to_dict()
        console.print(
            f"{report['requests']} requests from {log} under {path}: logged ${report['logged_usd']} -> replayed "
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
    console.print(f"[dim]{runs[0][2].to_dict()['assumption']}[/dim]")
    if report_path is not None:
        console.print(f"report written to {report_path}")


def register(app: typer.Typer) -> None:
    """Attach ``router replay`` to the ``router`` app."""
    app.command("replay")(replay_command)
