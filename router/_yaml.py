"""YAML loading that remembers where every value came from, so errors can say ``file:line:column``.

``load_with_positions(text, filename)`` returns ``(data, positions)`` where ``positions`` maps a path
tuple such as ``("profiles", "cheap", "constraints", "min_quality")`` (list indices are ints) to the
1-based ``(line, column)`` of that key (or item). ``locate(positions, loc)`` finds the nearest known
position for a pydantic error location.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

Position = tuple[int, int]
Path = tuple[Any, ...]

try:  # the C loader is ~5x faster; both produce the same nodes
    _Loader: type = yaml.CSafeLoader  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader


class YamlSyntaxError(ValueError):
    """A YAML document could not be parsed; carries ``filename``, ``line`` and ``column`` (1-based)."""

    def __init__(self, filename: str, line: int, column: int, message: str) -> None:
        self.filename, self.line, self.column, self.message = filename, line, column, message
        super().__init__(f"{filename}:{line}:{column}: {message}")


def _construct(node: yaml.Node, path: Path, positions: dict[Path, Position], loader: Any) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise YamlSyntaxError(
                    "", key_node.start_mark.line + 1, key_node.start_mark.column + 1, f"duplicate key {key!r}"
                )
            child = (*path, key)
            positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = _construct(value_node, child, positions, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            positions[child] = (item.start_mark.line + 1, item.start_mark.column + 1)
            items.append(_construct(item, child, positions, loader))
        return items
    try:
        return loader.construct_object(node, deep=True)
    except ValueError:  # e.g. a timestamp-looking scalar that is no date (2026-13-02): keep its text
        return node.value


def load_with_positions(text: str, filename: str = "<string>") -> tuple[Any, dict[Path, Position]]:
    """Parse one YAML document safely, returning the data and the position of every key and item."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        positions: dict[Path, Position] = {(): (1, 1)}
        if node is None:
            return None, positions
        data = _construct(node, (), positions, loader)
        return data, positions
    except YamlSyntaxError as exc:
        raise YamlSyntaxError(filename, exc.line, exc.column, exc.message) from None
    except yaml.MarkedYAMLError as exc:
        unclosed = _unclosed_opener(text, exc)
        if unclosed is not None:
            (line, col), char = unclosed
            closer = "]" if char == "[" else "}"
            where = exc.problem_mark.line + 1 if exc.problem_mark else line
            raise YamlSyntaxError(filename, line, col, f"YAML syntax error: this {char!r} is never closed (expected ',' or {closer!r}; the parser gave up at line {where})") from None
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlSyntaxError(filename, line, col, f"YAML syntax error: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(filename, 1, 1, f"YAML error: {exc}") from None
    finally:
        loader.dispose()


def _unclosed_opener(text: str, exc: Any) -> tuple[Position, str] | None:
    """For an error inside a flow collection (``[...]`` / ``{...}``) whose opener is never properly
    closed: the opener's position and character (the parser notices only lines later)."""
    start = exc.context_mark
    if start is None or exc.problem_mark is None or "flow" not in str(exc.context or ""):
        return None
    lines = text.splitlines(keepends=True)
    offset = sum(len(x) for x in lines[: start.line]) + start.column
    opener = text[offset : offset + 1]
    if opener not in ("[", "{"):
        return None
    pairs = {"[": "]", "{": "}"}
    stack: list[str] = []
    quote, i = "", offset
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and text[i - 1] in " \t\n":
            nl = text.find("\n", i)
            i = len(text) if nl < 0 else nl
            continue
        elif ch in pairs:
            stack.append(pairs[ch])
        elif ch in "]}":
            if not stack or ch != stack[-1]:
                break  # a mismatched closer: the opener is not properly closed
            stack.pop()
            if not stack:
                return None  # properly closed: the error is inside, report it where it is
        i += 1
    return (start.line + 1, start.column + 1), opener


def locate(positions: dict[Path, Position], loc: Sequence[Any]) -> Position:
    """The position of ``loc``, or of its nearest ancestor that has one."""
    path = tuple(loc)
    while path:
        if path in positions:
            return positions[path]
        path = path[:-1]
    return positions.get((), (1, 1))
