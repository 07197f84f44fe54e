"""YAML to plain Python data that remembers the line of every key and sequence item.

Built on PyYAML's `compose` node tree with `yaml.SafeLoader` semantics, with two deliberate
differences, both in the author's favour:

* a duplicate key in a mapping is an error (PyYAML silently keeps the last one);
* YAML 1.1 "sexagesimal" numbers are not recognised, so `local_time: 19:00` is the string
  `"19:00"` rather than the integer 1140. Nobody writes base-60 numbers on purpose; everybody
  writes times of day.

Merge keys (`<<: *defaults`) work as in PyYAML: explicit keys win over merged ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .problems import Problem, format_path

Path = tuple[str | int, ...]

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """SafeLoader without base-60 integers and floats."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _INT,
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)"
        r"|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


@dataclass
class YamlDocument:
    """The data of one YAML document and the 1-based line of every key and item in it."""

    data: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int:
        """The line of `path`, or of its nearest ancestor that exists in the document."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)


def load_yaml(text: str, source_name: str) -> tuple[YamlDocument, list[Problem]]:
    """Parse `text`; problems (syntax errors, duplicate keys) name `source_name` and a line."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        message = f"YAML syntax error: {exc.problem or exc.context}"
        if exc.context and exc.problem:
            message += f" ({exc.context})"
        loader.dispose()
        return YamlDocument(None), [Problem(source_name, line, "", message)]
    except yaml.YAMLError as exc:
        loader.dispose()
        return YamlDocument(None), [Problem(source_name, 1, "", f"YAML error: {exc}")]
    builder = _Builder(loader, source_name)
    try:
        if node is None:
            return YamlDocument(None, {(): 1}), []
        builder.lines[()] = node.start_mark.line + 1
        data = builder.convert(node, ())
    finally:
        loader.dispose()
    return YamlDocument(data, builder.lines), builder.problems


class _Builder:
    def __init__(self, loader: _Loader, source_name: str) -> None:
        self.loader = loader
        self.source_name = source_name
        self.lines: dict[Path, int] = {}
        self.problems: list[Problem] = []
        self._active: set[int] = set()

    def problem(self, node: Node, path: Path, message: str) -> None:
        line = node.start_mark.line + 1
        self.problems.append(Problem(self.source_name, line, format_path(path), message))

    def convert(self, node: Node, path: Path) -> Any:
        if id(node) in self._active:
            self.problem(node, path, "an alias refers to the node that contains it")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, ScalarNode):
                return self.loader.construct_object(node, deep=True)
            if isinstance(node, SequenceNode):
                items = []
                for index, item in enumerate(node.value):
                    self.lines[(*path, index)] = item.start_mark.line + 1
                    items.append(self.convert(item, (*path, index)))
                return items
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            self.problem(node, path, f"unsupported YAML node {type(node).__name__}")
            return None
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: MappingNode, path: Path) -> dict:
        result: dict = {}
        # Merged keys go in first so that explicit keys (and their lines) overwrite them.
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                continue
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, MappingNode):
                    self.problem(key_node, path, "'<<' must merge a mapping or a list of them")
                    continue
                for key, value in self._mapping(source, path).items():
                    result.setdefault(key, value)
        first_line: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            if not isinstance(key_node, ScalarNode):
                self.problem(key_node, path, "a key must be a plain value, not a list or mapping")
                continue
            key = self.loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                self.problem(key_node, path, f"unusable key {key!r}")
                continue
            line = key_node.start_mark.line + 1
            key_path = (*path, str(key))
            if key in first_line:
                self.problems.append(
                    Problem(
                        self.source_name,
                        line,
                        format_path(key_path),
                        f"duplicate key '{key}' (first given at line {first_line[key]})",
                    )
                )
                continue
            first_line[key] = line
            self.lines[key_path] = line
            result[key] = self.convert(value_node, key_path)
        return result
