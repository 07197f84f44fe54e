"""What is wrong with a protocol, located by file, line and field."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One mistake in a protocol: `FILE:LINE: field: message`.

    `line` is 1-based; it is None only when no line applies (an unreadable file). `field` is
    the dotted path of the offending key (`arms[1].assistant.temperature`), empty for problems
    of the document as a whole, such as YAML syntax errors.
    """

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class ProtocolError(ValueError):
    """A protocol failed to load; `.problems` lists every mistake found, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = sorted(
            problems, key=lambda p: (p.file, p.line or 0, p.field, p.message)
        )
        super().__init__("\n".join(str(problem) for problem in self.problems))


def format_path(path: Iterable[str | int]) -> str:
    """`("arms", 1, "assistant", "temperature")` -> `arms[1].assistant.temperature`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
