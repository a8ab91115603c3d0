"""``router replay --report``: one self-contained HTML file comparing policies against the logged reality.

Charts are drawn with matplotlib (the optional ``report`` extra: ``pip install 'vertex-policy-router[report]'``)
and inlined as SVG (text drawn as paths), so the file needs no network, no CDN and no fonts. Every chart has
its numbers beside it as a table. The figures come from :meth:`router.replay.ReplayReport.figures`, the same
data ``router replay --json`` prints.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from router.burn import format_usd
from router.errors import RouterError

if TYPE_CHECKING:
    from router.replay import ReplayReport

LOGGED = "logged (reality)"
REPORT_EXTRA = "pip install 'vertex-policy-router[report]'"


class ReportDependencyError(RouterError):
    """The optional plotting dependency of ``--report`` is not installed."""


@dataclass(frozen=True)
class PolicyRun:
    """One replayed policy: its display name and the replay's report."""

    name: str
    report: "ReplayReport"


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ReportDependencyError(f"--report needs matplotlib: {REPORT_EXTRA}") from None
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "path"  # text as paths: the SVG needs no font
    matplotlib.rcParams["svg.hashsalt"] = "router-report"  # stable ids: the same log gives the same file
    import matplotlib.pyplot as plt

    return plt


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    fig.clf()
    text = buffer.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)  # creation date and RDF namespaces: noise
    return text[text.index("<svg") :]


def _dates(ax: Any) -> None:
    """Readable time ticks (2026-11-25, 10:15, :30 ...) whatever the log's time span."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _when(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(title: str, chart: str, table: str, note: str = "") -> str:
    note_html = f"<p class='note'>{html.escape(note)}</p>" if note else ""
    return f"<section><h2>{html.escape(title)}</h2>{note_html}<div class='chart'>{chart}</div>{table}</section>"


def _cumulative_by_budget(run: PolicyRun, budget: str, logged: bool) -> tuple[list[dt.datetime], list[float]]:
    xs, ys, total = [], [], Decimal(0)
    for item in run.report.timeline:
        if budget in item["budgets"]:
            total += item["logged_usd"] if logged else item["replayed_usd"]
            xs.append(_when(item["at"]))
            ys.append(float(total))
    return xs, ys


def _spend_section(plt: Any, runs: Sequence[PolicyRun]) -> str:
    budgets: dict[str, Decimal] = {}
    for run in runs:
        budgets.update(run.report.budget_limits)
    panels = ["(all requests)", *sorted(budgets)]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.8 * len(panels)), squeeze=False, layout="constrained")
    rows = []
    for ax, panel in zip(axes[:, 0], panels):
        if panel == "(all requests)":
            series = [(LOGGED, [_when(i["at"]) for i in runs[0].report.timeline], _running([i["logged_usd"] for i in runs[0].report.timeline]))]
            series += [(run.name, [_when(i["at"]) for i in run.report.timeline], _running([i["replayed_usd"] for i in run.report.timeline])) for run in runs]
        else:  # only the policies that have this budget are charged against it
            having = [run for run in runs if panel in run.report.budget_limits]
            series = [(LOGGED, *_cumulative_by_budget(having[0], panel, logged=True))]
            series += [(run.name, *_cumulative_by_budget(run, panel, logged=False)) for run in having]
            ax.axhline(float(budgets[panel]), color="red", linestyle="--", linewidth=1, label=f"limit {format_usd(budgets[panel])}")
        for name, xs, ys in series:
            ax.step(xs, ys, where="post", label=name, linestyle=":" if name == LOGGED else "-")
            rows.append((panel, name, format_usd(Decimal(str(ys[-1]))) if ys else "$0.00"))
        _dates(ax)
        ax.set_title(f"cumulative spend: {panel}", fontsize=9)
        ax.set_ylabel("USD")
        ax.legend(fontsize=7, loc="upper left")
        ax.tick_params(labelsize=7)
    chart = _svg(fig)
    plt.close(fig)
    exact = [(panel, name, total) for panel, name, total in rows]
    return _section(
        "Cumulative spend over time (budget limits drawn)", chart, _table(("budget", "policy", "spend at end of log"), exact),
        "Spend charged to each budget across the whole log, per policy; the dashed line is the budget's limit.",
    )


def _running(values: Sequence[Decimal]) -> list[float]:
    total, out = Decimal(0), []
    for value in values:
        total += value
        out.append(float(total))
    return out


def _grouped_bars(plt: Any, categories: list[str], series: list[tuple[str, list[float]]], xlabel: str) -> str:
    height = max(2.5, 0.32 * len(categories) * max(1, len(series)) / 2 + 1)
    fig, ax = plt.subplots(figsize=(9, height))
    width = 0.8 / max(1, len(series))
    for index, (name, values) in enumerate(series):
        positions = [c + index * width for c in range(len(categories))]
        ax.barh(positions, values, height=width, label=name)
    ax.set_yticks([c + width * (len(series) - 1) / 2 for c in range(len(categories))])
    ax.set_yticklabels(categories, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=7)
    chart = _svg(fig)
    plt.close(fig)
    return chart


def _mix_section(plt: Any, runs: Sequence[PolicyRun]) -> str:
    models = sorted({m for run in runs for m in (*run.report.by_model_logged, *run.report.by_model_replayed)} - {"-"})
    series = [(LOGGED, [float(runs[0].report.by_model_logged.get(m, 0)) for m in models])]
    series += [(run.name, [float(run.report.by_model_replayed.get(m, 0)) for m in models]) for run in runs]
    chart = _grouped_bars(plt, models, series, "requests")
    rows = [(m, runs[0].report.by_model_logged.get(m, 0), *(run.report.by_model_replayed.get(m, 0) for run in runs)) for m in models]
    return _section("Model mix (requests per model)", chart, _table(("model", LOGGED, *(r.name for r in runs)), rows))


def _tenant_section(plt: Any, runs: Sequence[PolicyRun]) -> str:
    tenants = sorted({t for run in runs for t in run.report.by_tenant})
    logged = [runs[0].report.by_tenant[t]["logged_usd"] if t in runs[0].report.by_tenant else Decimal(0) for t in tenants]
    per_run = [[run.report.by_tenant[t]["replayed_usd"] if t in run.report.by_tenant else Decimal(0) for t in tenants] for run in runs]
    series = [(LOGGED, [float(v) for v in logged])] + [(run.name, [float(v) for v in values]) for run, values in zip(runs, per_run)]
    chart = _grouped_bars(plt, tenants, series, "USD")
    rows = [(t, format_usd(logged[i]), *(format_usd(values[i]) for values in per_run)) for i, t in enumerate(tenants)]
    return _section("Spend per tenant", chart, _table(("tenant", LOGGED, *(r.name for r in runs)), rows))


_MARKERS = {"downgrade": ("v", "tab:orange"), "refused": ("x", "tab:red"), "denied": ("X", "darkred")}


def _actions_section(plt: Any, runs: Sequence[PolicyRun]) -> str:
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(runs) + 1.4))
    seen_kinds: set[str] = set()
    start = min((_when(i["at"]) for run in runs for i in run.report.timeline), default=None)
    end = max((_when(i["at"]) for run in runs for i in run.report.timeline), default=None)
    for row, run in enumerate(runs):
        for event in run.report.fired:
            marker, color = _MARKERS.get(event["kind"], ("o", "gray"))
            label = event["kind"] if event["kind"] not in seen_kinds else None
            seen_kinds.add(event["kind"])
            ax.scatter([_when(event["at"])], [row], marker=marker, color=color, s=60, label=label)
    if start is not None and end is not None:
        ax.set_xlim(start - (end - start) * 0.02 - dt.timedelta(seconds=1), end + (end - start) * 0.02 + dt.timedelta(seconds=1))
    ax.set_yticks(range(len(runs)))
    ax.set_yticklabels([run.name for run in runs], fontsize=7)
    ax.set_ylim(-0.6, len(runs) - 0.4)
    if seen_kinds:
        ax.legend(fontsize=7, loc="upper left")
    ax.tick_params(axis="x", labelsize=7)
    _dates(ax)
    chart = _svg(fig)
    plt.close(fig)
    rows = [
        (run.name, event["at"], f"line {event['line']}", event["tenant"], event["kind"], event["budget"] or "-", event["action"])
        for run in runs
        for event in run.report.fired
    ]
    return _section(
        "Budget actions fired (downgrades, refusals)", chart,
        _table(("policy", "when", "log line", "tenant", "kind", "budget", "action"), rows) if rows else "<p>No budget action fired under any policy.</p>",
    )


def _grounding_section(plt: Any, runs: Sequence[PolicyRun]) -> str:
    pools = sorted({p for run in runs for p in run.report.pool_usage})
    if not pools:
        return _section("Grounding pools against their free quota", "", "<p>No grounded request in this log.</p>")
    fig, axes = plt.subplots(len(pools), 1, figsize=(9, 2.6 * len(pools)), squeeze=False, layout="constrained")
    rows = []
    for ax, pool in zip(axes[:, 0], pools):
        free = max((run.report.pool_free.get(pool, 0) for run in runs), default=0)
        for run in runs:
            points = run.report.pool_usage.get(pool, [])
            if points:
                ax.step([_when(at) for at, _ in points], [used for _, used in points], where="post", label=run.name)
                rows.append((pool, run.name, points[-1][1], free))
        ax.axhline(free, color="red", linestyle="--", linewidth=1, label=f"free quota {free:,}")
        _dates(ax)
        ax.set_title(pool, fontsize=9)
        ax.set_ylabel("units used")
        ax.legend(fontsize=7, loc="upper left")
        ax.tick_params(labelsize=7)
    chart = _svg(fig)
    plt.close(fig)
    return _section("Grounding pools against their free quota", chart, _table(("pool", "policy", "used at end of log", "free quota"), rows))


def _quality_section(plt: Any, runs: Sequence[PolicyRun]) -> str:
    points = [(LOGGED, runs[0].report.logged_usd, runs[0].report.mean_quality()["logged"])]
    points += [(run.name, run.report.replayed_usd, run.report.mean_quality()["replayed"]) for run in runs]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name, cost, quality in points:
        if quality is not None:
            ax.scatter([float(cost)], [float(quality)], s=70, marker="s" if name == LOGGED else "o", label=name)
    ax.set_xlabel("total cost (USD)")
    ax.set_ylabel("mean quality score (0-100)")
    ax.legend(fontsize=7)
    chart = _svg(fig)
    plt.close(fig)
    rows = [(name, format_usd(cost), quality if quality is not None else "-") for name, cost, quality in points]
    return _section(
        "Quality bought per dollar", chart, _table(("policy", "total cost", "mean quality of the chosen models"), rows),
        "Mean catalog quality score (LMArena style-controlled, mapped to 0-100) of the models that served, against the total bill.",
    )


def _summary(runs: Sequence[PolicyRun], log: str) -> str:
    rows = [(LOGGED, runs[0].report.requests, format_usd(runs[0].report.logged_usd), "-", "-", "-", runs[0].report.mean_quality()["logged"] or "-")]
    for run in runs:
        r = run.report
        rows.append((run.name, r.requests, format_usd(r.replayed_usd), format_usd(r.replayed_usd - r.logged_usd), r.changed, r.refused, r.mean_quality()["replayed"] or "-"))
    return (
        f"<section><h2>Summary</h2><p>{runs[0].report.requests} logged requests from <code>{html.escape(log)}</code>.</p>"
        + _table(("policy", "requests", "total cost", "vs logged", "changed model", "refused", "mean quality"), rows)
        + "</section>"
    )


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.82em;margin:.6em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}
th{background:#f3f3f3}.chart svg{max-width:100%;height:auto}.note,.assumption{color:#555;font-size:.85em}
"""


def render_html(runs: Sequence[PolicyRun], log: str) -> str:
    """The whole report as one HTML document (inline SVG charts and tables; no external resource)."""
    if not runs:
        raise RouterError("a report needs at least one --policy")
    plt = _pyplot()
    sections = [
        _summary(runs, log),
        _spend_section(plt, runs),
        _mix_section(plt, runs),
        _tenant_section(plt, runs),
        _actions_section(plt, runs),
        _grounding_section(plt, runs),
        _quality_section(plt, runs),
    ]
    from router.replay import ASSUMPTION

    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>router replay: what-if report</title>"
        f"<style>{_CSS}</style></head><body><h1>What-if report: {len(runs)} polic{'y' if len(runs) == 1 else 'ies'} against the logged reality</h1>"
        + "".join(sections)
        + f"<p class='assumption'>Assumption: {html.escape(ASSUMPTION)}.</p></body></html>\n"
    )


def write_report(runs: Sequence[PolicyRun], log: str, path: str | Path) -> Path:
    """Render and write the report; returns its path."""
    target = Path(path)
    text = render_html(runs, log)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target
