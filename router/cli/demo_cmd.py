"""``router demo``: a realistic mix of routed requests, offline, against the bundled Vertex stub.

Everything is real except Google: the policy engine, the ledger (memory by default, or ``--store``),
litellm's Vertex code and our cost engine. The stub answers like Vertex AI does (usage, grounding
metadata, trafficType, a 429 now and then) so the table shows the decisions an operator would see.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from router.cli._output import cli_errors, fail, print_json

_WORDS = "the quarterly report shows revenue growth in cloud services while costs for storage and compute remain flat ".split()


def _text(tokens: int) -> str:
    """About ``tokens`` tokens of plausible English (4 characters a token)."""
    out: list[str] = []
    size = 0
    i = 0
    while size < tokens * 4:
        word = _WORDS[i % len(_WORDS)]
        out.append(word)
        size += len(word) + 1
        i += 1
    return " ".join(out)


@dataclass
class Scenario:
    """One demo request: who sends it and what it looks like."""

    label: str
    tenant: str
    app: str
    prompt_tokens: int
    max_tokens: int = 512
    task: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    grounding: bool = False
    latency_sensitive: bool = False
    stream: bool = False

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"{self.label}: {_text(self.prompt_tokens)}"}]


def scenarios() -> list[Scenario]:
    """The demo's request mix: two tenants, small and large prompts, grounding, latency-sensitive chat,
    a support app, streaming, and enough analytics traffic from acme to push its monthly budget past 80 %."""
    mix: list[Scenario] = [
        Scenario("chat: short question", "globex", "chat", 200, 256, latency_sensitive=True),
        Scenario("support: summarise ticket", "globex", "support", 3_000, 400, task="summarise"),
        Scenario("search: grounded answer", "globex", "search", 400, 300, grounding=True),
        Scenario("chat: streamed reply", "globex", "chat", 600, 300, stream=True),
        Scenario("code: review a diff", "globex", "devtools", 8_000, 1_500, task="code"),
    ]
    for i in range(1, 15):
        mix.append(Scenario(f"analytics: long report #{i}", "acme", "analytics", 60_000, 4_000, task="analysis"))
        if i % 3 == 0:
            mix.append(Scenario(f"search: grounded lookup #{i // 3}", "acme", "search", 500, 300, grounding=True))
        if i % 4 == 0:
            mix.append(Scenario(f"chat: quick reply #{i // 4}", "acme", "chat", 300, 200, latency_sensitive=True))
    mix.append(Scenario("extract: JSON from invoice", "globex", "extract", 2_500, 600, task="extract"))
    return mix


def _default_policy() -> Path:
    for candidate in (Path.cwd() / "policies" / "demo.yaml", Path(__file__).resolve().parents[2] / "policies" / "demo.yaml"):
        if candidate.is_file():
            return candidate
    fail("policies/demo.yaml not found: run from the repository root or pass --policy")


def _fmt_usd(value: Decimal) -> str:
    from router.burn import format_usd

    return format_usd(value)


_OUTCOME_MARK = {"rate_limited": "429", "server_error": "5xx", "timeout": "timeout", "context_overflow": "too long", "denied": "budget"}


def _why(decision: dict[str, Any], scenario: Scenario) -> str:
    """The decision in a few words: rule, budget actions, and notes an operator would care about."""
    parts: list[str] = []
    for action in decision.get("actions") or []:
        parts.append(re.sub(r"\|\S+", "", action).replace(": profile ", " → "))  # "tenant:acme at 84% >= 80% → cost-first"
    notes = decision.get("notes") or []
    if scenario.latency_sensitive and any("no Priority PayGo price" in n for n in notes):
        parts.append("priority asked: no priority price in the catalog → standard")
    elif scenario.latency_sensitive and decision.get("priority"):
        parts.append("Priority PayGo (global endpoint)")
    return "; ".join(parts)


def _row(index: int, scenario: Scenario, response: Any, error: str | None) -> dict[str, Any]:
    record = getattr(response, "routing", None)
    if record is None:
        return {"#": index, "tenant": scenario.tenant, "request": scenario.label, "model": "-", "outcome": error or "?", "cost_usd": Decimal(0)}
    decision = record.decision
    served = next((a for a in record.attempts if a.outcome in ("ok", "interrupted")), None)
    path = [f"{a.model} ✗{_OUTCOME_MARK.get(a.outcome, a.outcome)}" for a in record.attempts if a is not served]
    return {
        "#": index,
        "tenant": scenario.tenant,
        "request": scenario.label,
        "rule": decision.get("rule") or "default",
        "profile": decision.get("profile"),
        "model": record.model,
        "location": served.location if served else "-",
        "route": " → ".join([*path, f"{record.model} @ {served.location if served else '-'}"]),
        "attempts": [{"model": a.model, "outcome": a.outcome} for a in record.attempts],
        "why": _why(decision, scenario),
        "traffic": record.traffic_type or "-",
        "grounding": f"{record.grounding_free_units} free / {record.grounding_billable_units} billed" if scenario.grounding else "",
        "cost_usd": record.cost_usd,
        "outcome": "ok",
    }


def _script_stub(stub: Any) -> None:
    """Make the stub behave like a day on Vertex: one 429 on Claude (a fallback shows), grounded answers
    with web sources, and a Priority PayGo request downgraded to standard once."""
    stub.script("claude-sonnet", error="rate_limited", error_times=1)
    stub.script("gemini-2.5-flash-lite", traffic_type="auto")
    stub.script("gemini-2.5-flash", traffic_type="ON_DEMAND")  # priority asked, downgraded: billed standard


async def _run(
    policy: Path, store_url: str, scenarios_: list[Scenario], settings: Any, request_log: Path | None = None, metrics: Any = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from router._client import Router
    from router.errors import RouterError

    router = Router(
        policy=str(policy),
        store=store_url,
        vertex_project=settings.vertex_project,
        vertex_location=settings.vertex_location,
        vertex_credentials=settings.vertex_credentials,
        api_base=settings.api_base,
        request_log=request_log,
        metrics=metrics,
    )
    rows: list[dict[str, Any]] = []
    try:
        for index, scenario in enumerate(scenarios_, start=1):
            kwargs = dict(
                tenant=scenario.tenant,
                app=scenario.app,
                task=scenario.task,
                tags=scenario.tags,
                max_tokens=scenario.max_tokens,
                grounding=scenario.grounding or None,
                latency_sensitive=scenario.latency_sensitive,
            )
            try:
                if scenario.stream:
                    stream = await router.acomplete(scenario.messages(), stream=True, **kwargs)
                    async for _chunk in stream:
                        pass
                    response: Any = type("Streamed", (), {"routing": stream.routing})()
                else:
                    response = await router.acomplete(scenario.messages(), **kwargs)
                rows.append(_row(index, scenario, response, None))
            except RouterError as exc:
                rows.append(_row(index, scenario, None, f"{type(exc).__name__}: {exc}"))
        counters = await _counters(router)
        await router.refresh_metrics()
    finally:
        await router.aclose()
    return rows, counters


async def _counters(router: Any) -> dict[str, Any]:
    """Spend per budget and grounding pool usage, read back from the ledger."""
    budgets, snap = await router.ledger_state()
    return {
        "budgets": [
            {"budget": b.id, "spend_usd": snap.spend.get(b.id, Decimal(0)), "limit_usd": b.limit_usd}
            for b in budgets
        ],
        "pools": [{"pool": u.pool_id, "used": u.used, "free_units": u.free_units, "remaining": u.remaining} for u in snap.pools.values()],
    }


def _print(rows: list[dict[str, Any]], counters: dict[str, Any], policy: Path, store_url: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()  # follows the terminal's width: long cells wrap inside their column, never truncated
    title = f"router demo — policy {policy.name}, store {store_url}, Vertex stub on loopback"
    table = Table(title=title, show_lines=False)
    wide = console.width >= 140
    if wide:
        for col in ("#", "tenant", "request", "rule → profile", "routed to", "cost", "grounding", "why"):
            table.add_column(col, overflow="fold", no_wrap=col == "cost")
    else:  # narrow terminal: the rule, profile and reasons go under the request, grounding under the cost
        table.add_column("#", no_wrap=True)
        table.add_column("request → rule → profile (why)", overflow="fold", ratio=3)
        table.add_column("routed to", overflow="fold", ratio=2)
        table.add_column("cost", no_wrap=True)
    total = Decimal(0)
    for row in rows:
        total += row["cost_usd"]
        failed = row.get("outcome") != "ok"
        if wide:
            if failed:
                table.add_row(str(row["#"]), row["tenant"], row["request"], "", f"[red]{row['outcome']}[/red]", "", "", "")
                continue
            table.add_row(
                str(row["#"]), row["tenant"], row["request"], f"{row['rule']} → {row['profile']}", row["route"],
                _fmt_usd(row["cost_usd"]), row["grounding"], row["why"],
            )
            continue
        if failed:
            table.add_row(str(row["#"]), f"{row['tenant']} {row['request']}", f"[red]{row['outcome']}[/red]", "")
            continue
        why = f" [dim]({row['why']})[/dim]" if row["why"] else ""
        cost = _fmt_usd(row["cost_usd"]) + (f"\n[dim]{row['grounding']}[/dim]" if row["grounding"] else "")
        table.add_row(str(row["#"]), f"{row['tenant']} {row['request']} → {row['rule']} → {row['profile']}{why}", row["route"], cost)
    console.print(table)
    console.print(f"total billed: {_fmt_usd(total)} over {len(rows)} requests")
    budgets = Table(title="Budgets (from the ledger)")
    for col in ("budget", "spend", "limit", "used"):
        budgets.add_column(col, overflow="fold")
    for b in counters["budgets"]:
        used = (b["spend_usd"] / b["limit_usd"] * 100) if b["limit_usd"] else Decimal(0)
        budgets.add_row(b["budget"], _fmt_usd(b["spend_usd"]), _fmt_usd(b["limit_usd"]), f"{used:.1f} %")
    console.print(budgets)
    pools = Table(title="Grounding free pools (from the ledger)")
    for col in ("pool", "used", "free", "remaining"):
        pools.add_column(col, overflow="fold")
    for p in counters["pools"]:
        pools.add_row(p["pool"], str(p["used"]), str(p["free_units"]), str(p["remaining"]))
    console.print(pools)


def demo(
    store: Annotated[str, typer.Option("--store", help="Ledger URL (default: the embedded memory store).")] = "memory://",
    policy: Annotated[Optional[Path], typer.Option("--policy", help="Policy file (default: policies/demo.yaml).")] = None,
    loop: Annotated[bool, typer.Option("--loop", help="Repeat the mix forever (for the compose stack / metrics).")] = False,
    pause: Annotated[float, typer.Option("--pause", min=0, help="Seconds between rounds with --loop.")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows and counters as JSON.")] = False,
    request_log: Annotated[Optional[Path], typer.Option("--request-log", help="Also write a request log, for `router replay`.")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Also write the what-if HTML report of this run (the demo policy, cost-first and quality-first replayed against it; needs the [report] extra).")] = None,
    metrics_port: Annotated[Optional[int], typer.Option("--metrics-port", min=1, max=65535, help="Serve the demo Router's Prometheus metrics (requests, cost, fallbacks, denials, ledger gauges) on this port.")] = None,
    metrics_addr: Annotated[str, typer.Option("--metrics-addr", help="Address for --metrics-port: loopback by default; 0.0.0.0 in a container.")] = "127.0.0.1",
) -> None:
    """Route a realistic request mix through a policy, offline (embedded store + loopback Vertex stub), and show where each went, why, and what it cost."""
    import asyncio

    from router.testing.vertex_stub import VertexStub, vertex_settings_for

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    policy_path = policy or _default_policy()
    if report is not None:
        from router.report import _pyplot

        with cli_errors():
            _pyplot()  # say which extra to install before running anything
    registry = None
    if metrics_port is not None:
        from router.metrics import RouterMetrics, serve_metrics

        registry = RouterMetrics()
        serve_metrics(registry, metrics_port, metrics_addr)
    with VertexStub() as stub, tempfile.TemporaryDirectory(prefix="router-demo-") as tmp:
        _script_stub(stub)
        settings = vertex_settings_for(stub, tmp)
        log_path = request_log if request_log is not None else (Path(tmp) / "requests.jsonl" if report is not None else None)
        while True:
            with cli_errors():
                rows, counters = asyncio.run(_run(policy_path, store, scenarios(), settings, log_path, registry))
                if report is not None and log_path is not None:
                    _write_report(policy_path, log_path, report)
            if as_json:
                print_json({"rows": rows, "counters": counters})
            else:
                _print(rows, counters, policy_path, store)
            if not loop:
                break
            time.sleep(pause)


def _write_report(policy: Path, log: Path, out: Path) -> None:
    """The what-if report of the run: the demo's policy and the bundled cost-first / quality-first examples."""
    import asyncio

    from router.catalog import default_catalog
    from router.policy import compile_policy, load_policy
    from router.replay import read_log, replay
    from router.report import PolicyRun, write_report

    catalog = default_catalog()
    paths = [policy, *(p for p in (policy.parent / "cost-first.yaml", policy.parent / "quality-first.yaml") if p.is_file() and p != policy)]
    runs = [PolicyRun(p.stem, asyncio.run(replay(read_log(log), compile_policy(load_policy(p, catalog), catalog), catalog))) for p in paths]
    write_report(runs, str(log), out)


def register(app: typer.Typer) -> None:
    """Attach ``router demo`` to the ``router`` app."""
    app.command("demo")(demo)
