"""The ``router`` command line. Commands live in small modules; none of them imports litellm at start-up."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="router",
    help="Policy-driven model router for Vertex AI: prices, policies, spend and quota.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from router.cli import catalog_cmds  # noqa: F401  (commands register themselves on `app`)

    for name in ("policy_cmds", "ledger_cmds", "demo_cmd"):
        try:
            __import__(f"router.cli.{name}")
        except ModuleNotFoundError as exc:  # a command module not present in this build
            if exc.name != f"router.cli.{name}":
                raise


def main() -> None:
    """Console-script entry point."""
    _register()
    app()
