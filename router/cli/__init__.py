"""The ``router`` command line. Commands live in small modules; none of them imports litellm at start-up."""

from __future__ import annotations

from importlib import import_module

import typer

app = typer.Typer(
    name="router",
    help="Policy-driven model router for Vertex AI: prices, policies, spend and quota.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


_registered = False


def _register() -> None:
    """Attach every command module to ``app`` (idempotent)."""
    global _registered
    if _registered:
        return
    _registered = True
    from router.cli import catalog_cmds  # noqa: F401  (commands register themselves on `app`)

    for name in ("policy_cmds", "ledger_cmds", "ops_cmds", "demo_cmd", "replay_cmd"):
        try:
            module = import_module(f"router.cli.{name}")
        except ModuleNotFoundError as exc:  # a command module not present in this build
            if exc.name != f"router.cli.{name}":
                raise
            continue
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


def main() -> None:
    """Console-script entry point."""
    _register()
    app()


def get_app() -> typer.Typer:
    """The fully registered Typer app (for tests: ``CliRunner().invoke(get_app(), [...])``)."""
    _register()
    return app
