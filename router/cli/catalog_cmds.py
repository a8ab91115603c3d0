"""``router cost``, ``router catalog`` and ``router plan-gsu``: the catalog and the cost engine from the shell."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from router.cli import app
from router.cli._output import cli_errors, fail, print_json

Count = Annotated[int, typer.Option(min=0, show_default=False)]


class TrafficOption(str, Enum):
    on_demand = "on_demand"
    on_demand_priority = "on_demand_priority"


class GroundingKindOption(str, Enum):
    google_search = "google_search"
    enterprise_web_search = "enterprise_web_search"
    google_maps = "google_maps"


_UNIT_FLAG = {"grounded_prompt": "--grounded-prompts", "search_query": "--search-queries"}


def _check_grounding_flags(entry, fields: dict[str, object]) -> None:  # noqa: ANN001 - CatalogModel
    """Refuse grounding flags that contradict each other or the model, instead of ignoring one."""
    prompts, queries = fields["grounded_prompts"], fields["search_queries"]
    kind = fields["grounding_kind"]
    if kind is not None and not (prompts or queries):
        fail("--grounding-kind: says what --grounded-prompts / --search-queries count; give one of them")
    kind = kind or "google_search"
    if prompts and queries:
        option = entry.grounding.get(kind)
        used = f"; {entry.id} bills {kind} by {_UNIT_FLAG[option.unit]}" if option is not None and option.unit in _UNIT_FLAG else ""
        fail(f"--grounded-prompts and --search-queries: give one, the unit the model bills grounding in (Gemini 1.x/2.x: grounded prompts, Gemini 3: search queries){used}")
    units = max(int(prompts), int(queries), int(fields["grounding_requests"]), int(fields["web_searches"]))  # type: ignore[call-overload]
    billable = fields["grounding_billable_units"]
    if billable is not None:
        if fields["grounding_quota_used"]:
            fail("--grounding-billable-units and --grounding-quota-used: give one (billable units already account for the free pool)")
        if billable > units:  # type: ignore[operator]
            fail(f"--grounding-billable-units: {billable} is more than the grounding units given ({units})")


def _catalog():
    from router.catalog import default_catalog

    return default_catalog()


@app.command()
def cost(
    model: Annotated[str, typer.Argument(help="Catalog id or alias, e.g. gemini-2.5-pro or claude-sonnet-4-5@20250929.")],
    input_tokens: Annotated[int, typer.Option("--input-tokens", min=0, help="The whole prompt (cached, audio and cache-write tokens are parts of it).")] = 0,
    output_tokens: Annotated[int, typer.Option("--output-tokens", min=0)] = 0,
    thinking_tokens: Annotated[int, typer.Option("--thinking-tokens", min=0, help="Billed as output.")] = 0,
    cached_input_tokens: Annotated[int, typer.Option("--cached-input-tokens", min=0, help="Cached text/image/video input (context-cache hits).")] = 0,
    audio_input_tokens: Annotated[int, typer.Option("--audio-input-tokens", min=0, help="Audio input not from the cache.")] = 0,
    cached_audio_input_tokens: Annotated[int, typer.Option("--cached-audio-input-tokens", min=0, help="Audio input served from the context cache.")] = 0,
    image_output_tokens: Annotated[int, typer.Option("--image-output-tokens", min=0, help="Generated image tokens (Gemini 3 Pro, 2.5 Flash image output).")] = 0,
    cache_write_5m_tokens: Annotated[int, typer.Option("--cache-write-5m-tokens", min=0)] = 0,
    cache_write_1h_tokens: Annotated[int, typer.Option("--cache-write-1h-tokens", min=0)] = 0,
    input_chars: Annotated[int, typer.Option("--input-chars", min=0, help="Gemini 1.x (character-billed).")] = 0,
    output_chars: Annotated[int, typer.Option("--output-chars", min=0)] = 0,
    cached_input_chars: Annotated[int, typer.Option("--cached-input-chars", min=0)] = 0,
    cache_storage_token_hours: Annotated[int, typer.Option("--cache-storage-token-hours", min=0)] = 0,
    cache_storage_char_hours: Annotated[int, typer.Option("--cache-storage-char-hours", min=0)] = 0,
    batch: Annotated[bool, typer.Option("--batch", help="Batch API rates.")] = False,
    traffic: Annotated[TrafficOption, typer.Option("--traffic", help="trafficType the response reported.")] = TrafficOption.on_demand,
    grounded_prompts: Annotated[int, typer.Option("--grounded-prompts", min=0, help="Gemini 1.x/2.x: grounded prompts (Search / Enterprise: whose response had a web URL; Maps: that ran a Maps query).")] = 0,
    search_queries: Annotated[int, typer.Option("--search-queries", min=0, help="Gemini 3: search (or Maps) queries run.")] = 0,
    grounding_kind: Annotated[Optional[GroundingKindOption], typer.Option("--grounding-kind", help="What --grounded-prompts / --search-queries count: google_search (default), enterprise_web_search (Web Grounding for Enterprise) or google_maps.")] = None,
    grounding_requests: Annotated[int, typer.Option("--grounding-requests", min=0, help="Grounding with your data (Vertex AI Search): grounded requests.")] = 0,
    web_searches: Annotated[int, typer.Option("--web-searches", min=0, help="Claude web search tool uses.")] = 0,
    grounding_quota_used: Annotated[int, typer.Option("--grounding-quota-used", min=0, help="Units the free pool had already used this period.")] = 0,
    grounding_billable_units: Annotated[Optional[int], typer.Option("--grounding-billable-units", min=0, help="Units the free pool did not cover, as the ledger granted them (instead of --grounding-quota-used).")] = None,
    location: Annotated[Optional[str], typer.Option("--location", help="Endpoint location (global or a region).")] = None,
    at: Annotated[Optional[str], typer.Option("--at", help="Price date YYYY-MM-DD (default: today, UTC).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: total_usd and the itemised lines.")] = False,
) -> None:
    """Price one request exactly, itemised, with the provenance of every rate."""
    from router.cost import Usage, compute_cost, fmt

    fields: dict[str, object] = dict(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        thinking_tokens=thinking_tokens,
        cached_input_tokens=cached_input_tokens,
        audio_input_tokens=audio_input_tokens,
        cached_audio_input_tokens=cached_audio_input_tokens,
        image_output_tokens=image_output_tokens,
        cache_write_5m_tokens=cache_write_5m_tokens,
        cache_write_1h_tokens=cache_write_1h_tokens,
        input_chars=input_chars,
        output_chars=output_chars,
        cached_input_chars=cached_input_chars,
        cache_storage_token_hours=Decimal(cache_storage_token_hours),
        cache_storage_char_hours=Decimal(cache_storage_char_hours),
        batch=batch,
        traffic=traffic.value,
        grounded_prompts=grounded_prompts,
        search_queries=search_queries,
        grounding_kind=grounding_kind.value if grounding_kind is not None else None,
        grounding_requests=grounding_requests,
        web_searches=web_searches,
        grounding_quota_used=grounding_quota_used,
        grounding_billable_units=grounding_billable_units,
        location=location,
    )
    if at:
        try:
            fields["at"] = dt.date.fromisoformat(at)
        except ValueError:
            fail(f"--at: {at!r} is not a date (YYYY-MM-DD)")
    with cli_errors():
        catalog = _catalog()
        entry = catalog.get(model)
        _check_grounding_flags(entry, fields)
        breakdown = compute_cost(entry, Usage.build(**fields), catalog.pools)
    if as_json:
        print_json(breakdown.to_dict())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{entry.id} on {breakdown.at}" + (" (long-context tier)" if breakdown.long_context else ""))
    for column in ("dimension", "quantity", "rate (USD)", "per", "amount (USD)"):
        table.add_column(column, justify="left" if column == "dimension" else "right")
    for line in breakdown.lines:
        table.add_row(line.dimension, fmt(line.quantity), fmt(line.rate), f"{fmt(line.per)} {line.unit}", fmt(line.amount))
    table.add_row("[b]total[/b]", "", "", "", f"[b]{fmt(breakdown.total)}[/b]")
    console = Console()
    console.print(table)
    for warning in breakdown.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    for line in breakdown.lines:
        console.print(f"[dim]{line.dimension}: {line.provenance}[/dim]")


@app.command()
def catalog(
    publisher: Annotated[Optional[str], typer.Option("--publisher", help="Only this publisher (google, anthropic, deepseek, ...).")] = None,
    at: Annotated[Optional[str], typer.Option("--at", help="Price date YYYY-MM-DD (default: today, UTC).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List catalog models: prices per 1M tokens (1K chars for Gemini 1.x), quality, lifecycle; with --json
    also task, capabilities, modalities, context window, max output and grounding kinds."""
    from router.cost import fmt

    with cli_errors():
        cat = _catalog()
    day = dt.date.fromisoformat(at) if at else dt.datetime.now(dt.timezone.utc).date()
    rows = []
    for model in cat:
        if publisher and model.publisher != publisher:
            continue
        in_dim, out_dim = ("input_chars", "output_chars") if model.billing_unit == "character" else ("input", "output")
        in_rate, out_rate = model.rate(in_dim, day), model.rate(out_dim, day)
        rows.append(
            {
                "id": model.id,
                "publisher": model.publisher,
                "family": model.family,
                "lifecycle": model.lifecycle,
                "billing_unit": model.billing_unit,
                "input_usd": fmt(in_rate[0]) if in_rate else None,
                "output_usd": fmt(out_rate[0]) if out_rate else None,
                "per": "1K chars" if model.billing_unit == "character" else "1M tokens",
                "task": model.task,
                "capabilities": list(model.capabilities),
                "input_modalities": list(model.input_modalities),
                "output_modalities": list(model.output_modalities),
                "context_window": model.context_window,
                "max_output_tokens": model.max_output_tokens,
                "grounding_kinds": sorted(model.grounding),
                "quality": fmt(model.quality.score.quantize(Decimal("0.1"))) if model.quality else None,
                "arena_score": model.quality.arena_score if model.quality else None,
                "regions": model.regions,
                "aliases": model.aliases,
            }
        )
    if publisher and not rows:
        fail(f"--publisher: no model from publisher {publisher!r}")
    if as_json:
        print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Vertex AI price catalog ({len(rows)} models, prices on {day})")
    for column in ("id", "publisher", "task", "lifecycle", "input", "output", "per", "context", "max out", "quality"):
        table.add_column(column, justify="right" if column in ("input", "output", "context", "max out", "quality") else "left")
    for r in rows:
        table.add_row(r["id"], r["publisher"], r["task"], r["lifecycle"], r["input_usd"] or "-", r["output_usd"] or "-", r["per"], f"{r['context_window']:,}", f"{r['max_output_tokens']:,}", r["quality"] or "-")
    Console().print(table)


def _decimal(name: str, raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        fail(f"{name}: {raw!r} is not a number")
    if not value.is_finite() or value <= 0:
        fail(f"{name}: must be a positive number")
    return value


@app.command("plan-gsu")
def plan_gsu_command(
    model: Annotated[Optional[str], typer.Argument(help="Catalog id, e.g. gemini-2.0-flash (with --from-log: only this model).")] = None,
    rps: Annotated[Optional[str], typer.Option("--rps", help="Requests per second to sustain.")] = None,
    input_tokens: Annotated[Optional[int], typer.Option("--input-tokens", min=0, help="Prompt tokens per request (audio included).")] = None,
    output_tokens: Annotated[Optional[int], typer.Option("--output-tokens", min=0)] = None,
    audio_input_tokens: Annotated[int, typer.Option("--audio-input-tokens", min=0, help="Part of --input-tokens that is audio.")] = 0,
    from_log: Annotated[Optional[Path], typer.Option("--from-log", help="Size from a request log (requests.jsonl) instead.")] = None,
    model_option: Annotated[Optional[str], typer.Option("--model", help="With --from-log: only this model.")] = None,
    percentile: Annotated[str, typer.Option("--percentile", help="With --from-log: percentile (nearest rank) of the per-second load to provision.")] = "99",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Provisioned Throughput: GSUs needed and the price of each commitment term (or, with --from-log,
    sized from real traffic with the PayGo cost it would avoid per term)."""
    from router.cost import fmt
    from router.gsu import plan_gsu

    if from_log is not None:
        _plan_from_log(from_log, model_option or model, _decimal("--percentile", percentile), as_json)
        return
    missing = [name for name, value in (("MODEL", model), ("--rps", rps), ("--input-tokens", input_tokens), ("--output-tokens", output_tokens)) if value is None]
    if missing:
        fail(f"plan-gsu needs {', '.join(missing)} (or --from-log REQUESTS.jsonl)")
    assert model is not None and rps is not None and input_tokens is not None and output_tokens is not None
    rate = _decimal("--rps", rps)
    with cli_errors():
        plan = plan_gsu(_catalog(), model, rate, input_tokens, output_tokens, audio_input_tokens)
    if as_json:
        print_json({"model": plan.model, "gsu": plan.gsu, "exact_gsu": fmt(plan.exact_gsu.quantize(Decimal("0.0001"))), "price_usd": {k: fmt(v) for k, v in plan.price_usd.items()}})
        return
    typer.echo(f"{plan.model}: {fmt(plan.burndown_tokens_per_second)} burndown tokens/s -> {plan.exact_gsu:.4f} GSU -> buy {plan.gsu} GSU")
    for term, price in plan.price_usd.items():
        per = "week" if term == "1w" else "month"
        typer.echo(f"  {term:>3}: ${fmt(price)} per {per}")
    typer.echo(f"  source: {plan.provenance}")


def _plan_from_log(path: Path, model: str | None, percentile: Decimal, as_json: bool) -> None:
    from router.cost import fmt
    from router.gsu import plan_gsu_from_log
    from router.replay import read_log

    if percentile > 100:
        fail("--percentile: must be at most 100")
    if not path.is_file():
        fail(f"{path}: no such request log")
    with cli_errors():
        plans = plan_gsu_from_log(_catalog(), list(read_log(path)), model, percentile)
    if as_json:
        print_json(
            [
                {
                    "model": p.model,
                    "requests": p.requests,
                    "span_seconds": p.span_seconds,
                    "percentile": fmt(p.percentile),
                    "burndown_tokens": p.burndown_tokens,
                    "tokens_per_second_at_percentile": p.tokens_per_second_at_percentile,
                    "peak_tokens_per_second": p.peak_tokens_per_second,
                    "exact_gsu": fmt(p.exact_gsu.quantize(Decimal("0.0001"))),
                    "gsu": p.gsu,
                    "covered_requests": p.covered_requests,
                    "paygo_usd": fmt(p.paygo_usd),
                    "paygo_avoided_usd": fmt(p.paygo_avoided_usd),
                    "terms": {
                        v.term: {"per": v.per, "price_usd": fmt(v.price_usd), "paygo_avoided_usd": fmt(v.paygo_avoided_usd), "saving_usd": fmt(v.saving_usd), "pays_off": v.pays_off}
                        for v in p.terms
                    },
                    "recommendation": p.recommendation,
                }
                for p in plans
            ]
        )
        return
    for p in plans:
        typer.echo(
            f"{p.model}: {p.requests} requests over {p.span_seconds} s; p{fmt(p.percentile)} {p.tokens_per_second_at_percentile:,} burndown tokens/s "
            f"(peak {p.peak_tokens_per_second:,}) -> {p.exact_gsu:.4f} GSU -> {p.gsu} GSU"
        )
        typer.echo(f"  {p.covered_requests} of {p.requests} requests fit; PayGo ${fmt(p.paygo_avoided_usd)} of ${fmt(p.paygo_usd)} avoided over the log")
        for v in p.terms:
            verdict = "pays off" if v.pays_off else "does not pay off"
            typer.echo(f"  {v.term:>3}: ${fmt(v.price_usd)} per {v.per} vs ${fmt(v.paygo_avoided_usd)} PayGo avoided per {v.per}: {verdict} (saving ${fmt(v.saving_usd)})")
        typer.echo(f"  recommendation: {p.recommendation}")
        typer.echo(f"  source: {p.provenance}")
