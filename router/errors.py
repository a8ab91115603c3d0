"""The router's exception tree: every error the library raises on purpose lives here.

    RouterError
    ├── CatalogError                 the price catalog is malformed or cannot answer
    │   ├── UnknownModelError        a model id not in the catalog (carries close matches)
    │   └── PriceNotAvailableError   a price dimension the seeds do not give for that model/date
    ├── UsageError                   bad usage/counts handed to the cost engine (negative, non-integer)
    │   └── ContextWindowExceededError  a prompt longer than the model's context window (never priced)
    ├── RequestError                 a call's routing argument is invalid (names the argument)
    ├── PolicyError                  a policy file is invalid (carries file, line, column)
    ├── NoEligibleModelError         a policy can be evaluated but no candidate satisfies it
    ├── RequestRefusedError          a budget action said "refuse"
    ├── BudgetExceededError          a reservation was denied (carries the scope that would overflow)
    ├── StoreError                   the ledger store failed
    │   ├── StoreUnavailableError    the store cannot be reached (fail_closed mode)
    │   └── JournalEntryError        an invalid fail_open journal event (quarantined, reported, not raised)
    └── TransportError               every attempt of a routed call failed
"""

from __future__ import annotations

from collections.abc import Sequence


class RouterError(Exception):
    """Base class of every error raised on purpose by this library."""


class CatalogError(RouterError):
    """The price catalog is malformed, or cannot answer a question."""


class UnknownModelError(CatalogError):
    """A model id that the catalog does not know; ``suggestions`` holds the closest ids."""

    def __init__(self, model: str, suggestions: Sequence[str] = ()) -> None:
        self.model = model
        self.suggestions = list(suggestions)
        hint = f"; did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown model {model!r}{hint}")


class PriceNotAvailableError(CatalogError):
    """The seeds give no price for this dimension of this model on this date (never silently 0)."""

    def __init__(self, model: str, dimension: str, detail: str = "") -> None:
        self.model = model
        self.dimension = dimension
        extra = f" ({detail})" if detail else ""
        super().__init__(f"no price for {dimension!r} of {model!r} in the catalog{extra}")


class UsageError(RouterError, ValueError):
    """Usage handed to the cost engine is invalid (negative or non-integer counts, parts > whole)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class ContextWindowExceededError(UsageError):
    """A prompt longer than the model's context window: Vertex refuses such a request, so it has no price.
    ``model``, ``prompt_tokens`` and ``context_window`` say which window was passed, and by how much."""

    def __init__(self, model: str, prompt_tokens: int, context_window: int, input_chars: int | None = None) -> None:
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.context_window = context_window
        if input_chars is None:
            field, size = "input_tokens", f"{prompt_tokens:,} tokens"
        else:
            field, size = "input_chars", f"{input_chars:,} characters (about {prompt_tokens:,} tokens at 4 characters a token)"
        super().__init__(
            field,
            f"a prompt of {size} exceeds the context window of {model} ({context_window:,} tokens); "
            "the model refuses such a request, so it is not priced",
        )


class RequestError(RouterError, ValueError):
    """A routing argument of a call is invalid (``tenant=""``, ``max_tokens=True``, a too long
    ``request_id``); ``field`` is the argument's name as the caller wrote it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class PolicyError(RouterError):
    """A policy document is invalid. ``problems`` lists ``(file, line, column, message)``."""

    def __init__(self, problems: Sequence[tuple[str, int, int, str]]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(f"{f}:{ln}:{col}: {msg}" for f, ln, col, msg in self.problems))


class NoEligibleModelError(RouterError):
    """No candidate of the selected profile satisfies the policy; ``rejected`` says why for each."""

    def __init__(self, message: str, rejected: Sequence[tuple[str, str]] = ()) -> None:
        self.rejected = list(rejected)
        super().__init__(message)


class RequestRefusedError(RouterError):
    """The policy refuses this request (e.g. a budget at 100 % with action ``refuse``)."""


class BudgetExceededError(RouterError):
    """A reservation was denied because ``scope`` would overflow its limit."""

    def __init__(self, scope: str, message: str = "") -> None:
        self.scope = scope
        super().__init__(message or f"budget exhausted for scope {scope!r}")


class StoreError(RouterError):
    """The ledger store failed to carry out an operation."""


class StoreUnavailableError(StoreError):
    """The ledger store cannot be reached (raised in ``fail_closed`` mode)."""


class JournalEntryError(StoreError):
    """An event of the ``fail_open`` journal that cannot be replayed as written (an invalid budget id,
    a negative amount, a missing field): it is moved to the journal's quarantine file and reported with
    the file and line it was read from (a logged warning), never applied and never raised to a caller."""

    def __init__(self, file: str, line: int, reason: str, quarantine: str) -> None:
        self.file = file
        self.line = line
        self.reason = reason
        self.quarantine = quarantine
        super().__init__(f"ledger journal {file} line {line}: {reason}; not replayed, moved to {quarantine}")


class TransportError(RouterError):
    """Every attempt of a routed call failed; ``attempts`` holds what each one returned."""

    def __init__(self, message: str, attempts: Sequence[object] = ()) -> None:
        self.attempts = list(attempts)
        super().__init__(message)
