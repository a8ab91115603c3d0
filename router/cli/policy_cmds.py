"""``router validate``, ``router explain`` and ``router schema``: policies from the shell.

None of these commands imports litellm (or the ledger): they only need the catalog and the policy engine.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand

from router.cli._output import fail, print_json

GROUNDING_KINDS = ("google_search", "enterprise_web_search", "your_data", "google_maps", "web_search")


class _OptionalGroundingValue(TyperCommand):
    """Lets ``--grounding`` be given without a value (meaning ``google_search``) or with a kind."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        fixed: list[str] = []
        for i, arg in enumerate(args):
            fixed.append(arg)
            if arg == "--grounding":
                nxt = args[i + 1] if i + 1 < len(args) else None
                if nxt is None or nxt not in GROUNDING_KINDS:
                    fixed.append("google_search")
        return super().parse_args(ctx, fixed)


def _catalog() -> Any:
    from router.catalog import default_catalog

    return default_catalog()


def _print_problems(problems: list[tuple[str, int, int, str]]) -> None:
    for file, line, col, message in problems:
        typer.echo(f"{file}:{line}:{col}: {message}")


def validate_command(
    files: Annotated[list[Path], typer.Argument(help="Policy YAML files.", show_default=False)],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print problems only.")] = False,
) -> None:
    """Validate policy files: exit 0 if all are valid, else 2 with file:line:column: message lines."""
    from router.errors import RouterError
    from router.policy import compile_policy, load_policy
    from router.policy.validate import validate_file

    try:
        catalog = _catalog()
    except RouterError as exc:
        fail(str(exc))
    failed = False
    for path in files:
        problems = validate_file(path, catalog)
        if problems:
            failed = True
            _print_problems(problems)
            continue
        if not quiet:
            policy = load_policy(path, catalog, filename=str(path))
            compiled = compile_policy(policy, catalog)
            typer.echo(
                f"{path}: ok (version {compiled.version}, {len(policy.profiles)} profiles, "
                f"{len(policy.rules)} rules, {len(policy.budgets)} budgets)"
            )
    if failed:
        raise typer.Exit(2)


def _pairs(option: str, values: list[str] | None) -> list[tuple[str, str]]:
    out = []
    for raw in values or []:
        key, eq, value = raw.partition("=")
        if not eq or not key:
            fail(f"{option}: expected KEY=VALUE, got {raw!r}")
        out.append((key, value))
    return out


def explain_command(
    policy: Annotated[Path, typer.Option("--policy", "-p", help="Policy YAML file.", show_default=False)],
    tenant: Annotated[Optional[str], typer.Option("--tenant")] = None,
    app_name: Annotated[Optional[str], typer.Option("--app")] = None,
    tag: Annotated[Optional[list[str]], typer.Option("--tag", help="KEY=VALUE (repeatable).")] = None,
    task: Annotated[Optional[str], typer.Option("--task", help="Task label.")] = None,
    prompt_tokens: Annotated[Optional[int], typer.Option("--prompt-tokens", min=0, help="Prompt tokens (exact count).")] = None,
    prompt_file: Annotated[Optional[Path], typer.Option("--prompt-file", help="Estimate prompt tokens from this file (about 4 characters a token).")] = None,
    max_tokens: Annotated[Optional[int], typer.Option("--max-tokens", min=1, help="Default: the policy's default_max_tokens.")] = None,
    grounding: Annotated[Optional[str], typer.Option("--grounding", help="Wants grounding; optional kind (default google_search).")] = None,
    latency_sensitive: Annotated[bool, typer.Option("--latency-sensitive")] = False,
    capability: Annotated[Optional[list[str]], typer.Option("--capability", help="Required capability: vision, audio, tools, json_output ... (repeatable).")] = None,
    spend: Annotated[Optional[list[str]], typer.Option("--spend", help="SCOPE=USD spent so far, e.g. tenant:acme=42.5 (repeatable).")] = None,
    quota: Annotated[Optional[list[str]], typer.Option("--quota", help="POOL=USED free grounding units used this period (repeatable).")] = None,
    ramp: Annotated[Optional[list[str]], typer.Option("--ramp", help="FAMILY=TOKENS priority tokens in the last minute (repeatable).")] = None,
    pt: Annotated[Optional[list[str]], typer.Option("--pt", help="MODEL@REGION=TOKENS Provisioned Throughput burndown-adjusted tokens in the current 30 s window (repeatable).")] = None,
    at: Annotated[Optional[str], typer.Option("--at", help="When the request happens: YYYY-MM-DD (00:00 UTC) or YYYY-MM-DDTHH:MM[:SS][+HH:MM] (default: now). Prices of that date; spend pacing measures the window elapsed up to it.")] = None,
    count_tokens: Annotated[bool, typer.Option("--count-tokens", help="With --prompt-file: ask Vertex's Count Tokens API for the prompt size when the policy's settings.count_tokens would (credentials from VERTEXAI_PROJECT, VERTEXAI_LOCATION, VERTEXAI_CREDENTIALS or GOOGLE_APPLICATION_CREDENTIALS, VERTEXAI_API_BASE).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
) -> None:
    """Show the decision the policy makes for a request, and why."""
    from router.errors import PolicyError, RequestError, RouterError
    from router.ledger.names import scope_forms
    from router.policy import RequestFeatures, StateSnapshot, compile_policy, estimate_prompt_tokens, explain, load_policy
    from router.policy.features import RAMP_START_TPM

    try:
        catalog = _catalog()
        compiled = compile_policy(load_policy(policy, catalog, filename=str(policy)), catalog)
    except PolicyError as exc:
        _print_problems(exc.problems)
        raise typer.Exit(2)
    except RouterError as exc:
        fail(str(exc))
    if prompt_tokens is not None and prompt_file is not None:
        fail("--prompt-tokens and --prompt-file are exclusive")
    if count_tokens and prompt_file is None:
        fail("--count-tokens needs --prompt-file (the text to count)")
    messages: list[dict[str, Any]] = []
    if prompt_file is not None:
        try:
            text = prompt_file.read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"--prompt-file: {exc.strerror}")
        messages = [{"role": "user", "content": text}]
        prompt_tokens = estimate_prompt_tokens(messages)
    day = dt.datetime.now(dt.timezone.utc).date()
    moment: dt.datetime | None = None  # "now" for spend pacing; None: the wall clock
    if at:
        moment = _moment("--at", at)
        day = moment.astimezone(dt.timezone.utc).date()
    if grounding is not None and grounding not in GROUNDING_KINDS:
        fail(f"--grounding: unknown kind {grounding!r} (one of {', '.join(GROUNDING_KINDS)})")
    spend_map: dict[str, Decimal] = {}
    for key, value in _pairs("--spend", spend):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            fail(f"--spend: {value!r} is not a number")
        if not amount.is_finite() or amount < 0:
            fail("--spend: must be a non-negative amount")
        for form in scope_forms(key):  # tenant:a/b also as the ledger spells it (tenant:a%2Fb)
            spend_map[form] = amount
    pools: dict[str, int] = {}
    for key, value in _pairs("--quota", quota):
        if key not in catalog.pools:
            fail(f"--quota: unknown grounding pool {key!r} (pools: {', '.join(catalog.pools)})")
        if not value.isdigit():
            fail(f"--quota: {value!r} is not a whole number")
        pools[key] = int(value)
    ramps: dict[str, tuple[int, int]] = {}
    for key, value in _pairs("--ramp", ramp):
        used, _, limit = value.partition("/")
        if not used.isdigit() or (limit and not limit.isdigit()):
            fail(f"--ramp: expected FAMILY=TOKENS[/LIMIT], got {key}={value}")
        ramps[key] = (int(used), int(limit) if limit else RAMP_START_TPM.get(key, 1_000_000))
    pt_used: dict[str, int] = {}
    for key, value in _pairs("--pt", pt):
        if key not in compiled.pt_keys:
            fail(f"--pt: {key!r} is not a subscription of the policy (subscriptions: {', '.join(compiled.pt_keys) or 'none'})")
        if not value.isdigit():
            fail(f"--pt: {value!r} is not a whole number of tokens")
        pt_used[key] = int(value)
    try:
        features = RequestFeatures(
            tenant=tenant,
            app=app_name,
            tags=dict(_pairs("--tag", tag)),
            task=task,
            prompt_tokens=prompt_tokens or 0,
            max_tokens=max_tokens or compiled.default_max_tokens,
            grounding=grounding,
            latency_sensitive=latency_sensitive,
            required_capabilities=frozenset(capability or ()),
            at=day,
        )
    except RequestError as exc:  # tenant="", a tag without a value...
        option = {"tenant": "--tenant", "app": "--app"}.get(exc.field, "--tag")
        fail(f"{option}: {str(exc).partition(': ')[2]}")
    state = StateSnapshot(spend_map, pools, ramps, now=moment, pt=pt_used)
    size = None
    if prompt_file is not None:
        from router.policy.counting import PromptSize

        size = PromptSize(features.prompt_tokens, "estimate", features.prompt_tokens, Decimal(0))
    elif prompt_tokens is not None:
        from router.policy.counting import PromptSize

        size = PromptSize(features.prompt_tokens, "caller")
    if count_tokens:
        features, counted = _count(compiled, features, state, messages)
        size = counted or size
    result = explain(compiled, features, state, size)
    if as_json:
        print_json(result)
        return
    _render(result, str(policy))


def _moment(option: str, text: str) -> dt.datetime:
    """A date (its 00:00 UTC) or an ISO date-time (UTC unless it names an offset)."""
    try:
        if "T" not in text and " " not in text.strip():
            day = dt.date.fromisoformat(text)
            return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option}: {text!r} is neither a date (YYYY-MM-DD) nor a date-time (YYYY-MM-DDTHH:MM[:SS][+HH:MM])")
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def _count(compiled: Any, features: Any, state: Any, messages: list[dict[str, Any]]) -> tuple[Any, Any]:
    """Size the prompt as the Router would (Count Tokens through :class:`CountOnlyTransport`, no litellm;
    a fresh in-memory quota pool, as this process makes one call)."""
    import asyncio

    from router._token_counter import PromptCounter, size_prompt
    from router._transport.count_tokens import CountOnlyTransport
    from router._transport.types import VertexSettings
    from router.ledger import MemoryStore

    async def run() -> tuple[Any, Any]:
        transport = CountOnlyTransport()
        try:
            return await size_prompt(
                compiled, features, state, messages,
                counter=PromptCounter(), transport=transport, store=MemoryStore(), settings=VertexSettings.from_env(),
            )
        finally:
            await transport.aclose()

    return asyncio.run(run())


def _render(r: dict[str, Any], policy_name: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=160)
    req = r["request"]
    attrs = ", ".join(
        f"{k}={v}"
        for k, v in req.items()
        if v not in (None, {}, [], False, "") and k not in ("prompt_tokens", "max_tokens", "at")
    )
    console.print(f"[b]policy[/b] {policy_name} (version {r['policy_version']})")
    console.print(f"[b]request[/b] {req['prompt_tokens']:,} prompt tokens, max_tokens {req['max_tokens']:,}, prices on {req['at']}" + (f"; {attrs}" if attrs else ""))
    size = r.get("prompt_size")
    if size:
        line = f"[b]prompt size[/b] {size['tokens']:,} tokens from {size['source']}"
        if size["source"] == "estimate" and size.get("margin_percent") not in (None, "0"):
            line += f" ({size['estimate']:,} + {size['margin_percent']}% margin)"
        if size.get("count_model"):
            line += f" for {size['count_model']}'s tokenizer" + (" (cached)" if size.get("cached") else "")
        console.print(line)
        for key in ("reason", "fallback"):
            if size.get(key):
                console.print(f"  {key}: {size[key]}")
    selected = r.get("rule_profile") or r["profile"]
    switched = f" -> [b]{r['profile']}[/b] (budget action)" if selected != r["profile"] else ""
    console.print(f"[b]rule[/b] {r['rule'] or '(none: default profile)'} -> [b]profile[/b] {selected}{switched}")
    for b in r.get("budget_status", []):
        console.print(f"[b]budget[/b] {b['scope']}: ${b['spend_usd']} of ${b['limit_usd']} ({b['utilisation_percent']}%)")
    for action in r.get("actions", []):
        console.print(f"[yellow]action[/yellow] {action}")
    if r.get("refused"):
        console.print(f"[red]refused[/red] {r['refused']}")
    if r.get("error"):
        console.print(f"[red]no model[/red] {r['error']}")
    if r.get("candidates"):
        table = Table(title="eligible candidates, best first")
        for col in ("#", "model", "location", "est. cost (USD)", "upper bound (USD)", "quality", "notes"):
            table.add_column(col, justify="right" if col in ("#", "est. cost (USD)", "upper bound (USD)", "quality") else "left")
        chosen = [r["model"], *r.get("fallbacks", [])]
        for i, c in enumerate(r["candidates"], 1):
            flags = []
            if c["model"] == r["model"]:
                flags.append("[green]chosen[/green]")
            elif c["model"] in chosen:
                flags.append(f"fallback {chosen.index(c['model'])}")
            if c.get("batch"):
                flags.append("batch")
            if c.get("grounding"):
                flags.append(f"grounding {c['grounding']}")
            if c.get("free_pool_room") is False:
                flags.append("no free pool room")
            table.add_row(str(i), c["model"], c["location"], c["estimated_cost_usd"], c["upper_bound_cost_usd"], c["quality"] or "-", ", ".join(flags))
        console.print(table)
    if r.get("model"):
        extra = []
        if r.get("priority"):
            extra.append("Priority PayGo")
        if r.get("batch"):
            extra.append("batch")
        if r.get("grounding"):
            extra.append(f"grounding {r['grounding']}")
        console.print(
            f"[b green]decision[/b green] {r['model']} @ {r['location']}"
            + (f" ({', '.join(extra)})" if extra else "")
            + f": estimated ${r['estimated_cost_usd']}, at most ${r['upper_bound_cost_usd']}"
        )
        console.print(f"[b]fallbacks[/b] {', '.join(r['fallbacks']) or '(none)'} on {', '.join(r.get('retry_on', []))}")
    for note in r.get("notes", []):
        console.print(f"[dim]note[/dim] {note}")
    if r.get("rejected"):
        console.print(f"[b]rejected[/b] ({len(r['rejected'])})")
        for item in r["rejected"]:
            console.print(f"  {item['model']}: {item['reason']}")


def schema_command() -> None:
    """Print the policy JSON Schema (the same as router/policy_schema.json)."""
    from router.policy.schema import schema_text

    typer.echo(schema_text(), nl=False)


_REGISTERED: set[int] = set()


def register(app: typer.Typer) -> None:
    """Add ``validate``, ``explain`` and ``schema`` to ``app`` (idempotent)."""
    if id(app) in _REGISTERED:
        return
    _REGISTERED.add(id(app))
    app.command("validate")(validate_command)
    app.command("explain", cls=_OptionalGroundingValue)(explain_command)
    app.command("schema")(schema_command)


def _self_register() -> None:
    from router.cli import app

    register(app)


_self_register()

__all__ = ["register"]
