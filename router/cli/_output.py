"""Shared output helpers for CLI commands: JSON printing and clean exits on library errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, NoReturn

import typer

from router.errors import RouterError, UnknownModelError


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        from router.cost import fmt

        return fmt(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON (Decimals as exact strings)."""
    sys.stdout.write(json.dumps(data, indent=2, default=_default, ensure_ascii=False) + "\n")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn library errors into a one-line message and exit status 2."""
    try:
        yield
    except UnknownModelError as exc:
        hint = f" (closest catalog ids: {', '.join(exc.suggestions)})" if exc.suggestions else ""
        fail(f"unknown model {exc.model!r}{hint}")
    except RouterError as exc:
        fail(str(exc))
