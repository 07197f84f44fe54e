"""Data files that report their mistakes as `FILE:LINE: field: message`.

The lowest layer of Flourish's file formats: study protocols, instrument definitions and later
preregistrations all load through it. It depends on nothing of ours, so `instruments` can use
it and `study` can build on it.

    document = DataFile(text, "who5.yaml")
    data = document.mapping("the instrument", "a mapping of keys")
    valid = document.sections(data, InstrumentModel)   # each top-level key on its own
    document.problem(("items", 3, "scale"), "no response scale 'agree5'")
    if document.problems:
        raise MyError(document.problems)

The YAML layer is PyYAML's `compose` node tree with `yaml.SafeLoader` semantics and two
deliberate differences, both in the author's favour:

* a duplicate key in a mapping is an error (PyYAML silently keeps the last one);
* YAML 1.1 "sexagesimal" numbers are not recognised, so `local_time: 19:00` is the string
  `"19:00"` rather than the integer 1140. Nobody writes base-60 numbers on purpose; everybody
  writes times of day.

Merge keys (`<<: *defaults`) work as in PyYAML: explicit keys win over merged ones.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path as FilePath
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]

# --- problems -----------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Problem:
    """One mistake in a data file: `FILE:LINE: field: message`.

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


class DataFileError(ValueError):
    """A data file failed to load; `.problems` lists every mistake found, in file order."""

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


def suggest(word: str, choices: Iterable[str]) -> str:
    """`; did you mean 'x'?` for the closest of `choices`, or `` when none is close."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def read_text(path: str | FilePath) -> tuple[str | None, list[Problem]]:
    """The UTF-8 text of the file at `path`, or None and the problem that prevented reading it."""
    name = str(path)
    try:
        raw = FilePath(path).read_bytes()
    except OSError as exc:
        return None, [Problem(name, None, "", f"cannot read: {exc.strerror}")]
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return None, [Problem(name, line, "", "the file is not UTF-8 text")]


# --- YAML with lines ----------------------------------------------------------------------------

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
    try:
        # The reader checks every character up front, in the constructor.
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        message = (
            f"a character YAML does not allow: U+{exc.character:04X} "
            "(control characters are not permitted; was the file saved as text?)"
            if isinstance(exc.character, int)
            else f"a character YAML does not allow: {exc.character!r}"
        )
        return YamlDocument(None), [Problem(source_name, line, "", message)]
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


# --- validation against pydantic models ---------------------------------------------------------


class DataFile:
    """One YAML data file being validated: its document, and the problems found so far."""

    def __init__(self, text: str, source_name: str) -> None:
        self.text = text
        self.source = source_name
        self.doc, self.problems = load_yaml(text, source_name)

    def problem(self, path: Path, message: str, *, line: int | None = None) -> None:
        """Record `message` about `path`, at the line where `path` is written."""
        where = self.doc.line_of(path) if line is None else line
        self.problems.append(Problem(self.source, where, format_path(path), message))

    def mapping(self, what: str, expected: str) -> dict | None:
        """The document's data if it is a mapping; otherwise a problem and None.

        `what` names the document ("the protocol"), `expected` its shape ("a mapping of
        sections"), as in "the protocol is a list, not a mapping; it must be ...".
        """
        if any(not p.field for p in self.problems):
            return None
        data = self.doc.data
        if isinstance(data, dict):
            return data
        shape = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        self.problem((), f"{what} is {shape}; it must be {expected}")
        return None

    def sections(
        self, data: dict, model: type[BaseModel], *, noun: str = "section"
    ) -> dict[str, Any]:
        """Each top-level field of `model` validated on its own, so that a mistake in one does
        not hide mistakes in another. Returns the fields that passed; unknown and missing keys
        and every validation error become problems."""
        fields = model.model_fields
        for key in data:
            if key not in fields:
                self.unknown((), str(key), list(fields))
        valid: dict[str, Any] = {}
        for name, info in fields.items():
            if name not in data:
                if info.is_required():
                    self.problem((), f"missing required {noun} '{name}'", line=1)
                continue
            value = self.validate((name,), data[name], _field_adapter(model, name), model)
            if value is not INVALID:
                valid[name] = value
        return valid

    def validate(self, path: Path, value: Any, adapter: TypeAdapter, root: type[BaseModel]) -> Any:
        """`value` (found at `path` of the document) validated by `adapter`, or `INVALID`.

        `root` is the model that `path` is relative to, used to list the keys allowed where an
        unknown key is found.
        """
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            for error in errors:
                if not _hidden_by_others(error, errors):
                    self._translate((*path, *error["loc"]), error, root)
            return INVALID

    def unknown(self, parent: Path, key: str, allowed: list[str]) -> None:
        """An unknown key, with the closest allowed one or else the list of allowed keys."""
        hint = suggest(key, allowed)
        if not hint:
            hint = f" (allowed here: {', '.join(allowed)})"
        self.problem((*parent, key), f"unknown key '{key}'{hint}")

    def _translate(self, loc: tuple, error: dict, root: type[BaseModel]) -> None:
        kind = error["type"]
        ctx = error.get("ctx") or {}
        value = error.get("input")
        if kind == "missing":
            parent = _data_path(self.doc.data, loc[:-1])
            self.problem(
                (*parent, loc[-1]),
                f"missing required key '{loc[-1]}'",
                line=self.doc.line_of(parent),
            )
            return
        path = _data_path(self.doc.data, loc)
        if kind == "extra_forbidden":
            model = _model_at(root, loc[:-1])
            allowed = [f.alias or n for n, f in model.model_fields.items()] if model else []
            self.unknown(path[:-1], str(path[-1]), allowed)
            return
        if kind == "union_tag_invalid":
            tags = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
            tag = ctx.get("tag")
            self.problem(
                (*path, ctx.get("discriminator", "kind").strip("'")),
                f"'{tag}' is not one of {', '.join(tags)}{suggest(tag, tags)}",
            )
            return
        if kind == "union_tag_not_found":
            name = str(ctx.get("discriminator", "kind")).strip("'")
            self.problem(path, f"missing required key '{name}'")
            return
        self.problem(path, _message(kind, error["msg"], ctx, value))


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


# What `DataFile.validate` returns for a value that failed (None can be a valid value).
INVALID: Any = _Invalid()


@cache
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter:
    info = model.model_fields[name]
    if not info.metadata:
        return TypeAdapter(info.annotation)
    return TypeAdapter(typing.Annotated[info.annotation, *info.metadata])


def _hidden_by_others(error: dict, errors: list[dict]) -> bool:
    """A list's "too short" is noise when its items failed: pydantic counts only valid items."""
    if error["type"] != "too_short":
        return False
    loc = error["loc"]
    return any(len(other["loc"]) > len(loc) and other["loc"][: len(loc)] == loc for other in errors)


def _message(kind: str, msg: str, ctx: dict, value: Any) -> str:
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return (
            f"{value!r} is not one of {', '.join(options)}"
            f"{suggest(value, options) if isinstance(value, str) else ''}"
        )
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of keys to values, not {_describe(value)}"
    if kind in ("tuple_type", "list_type"):
        return f"must be a list, not {_describe(value)}"
    text = msg[0].lower() + msg[1:]
    if kind == "string_type" and isinstance(value, bool):
        return (
            f"{text}, but YAML read an unquoted yes/no/on/off/true/false as {value}; "
            "put it in quotes"
        )
    if kind == "string_type" and isinstance(value, int | float):
        return f"{text}, but YAML read {value!r} as a number; put it in quotes"
    if isinstance(value, str | int | float | bool) or value is None:
        return f"{text} (got {value!r})"
    return text


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _data_path(data: Any, loc: tuple) -> tuple:
    """The part of a pydantic error location that names real keys and indexes in the data.

    Pydantic puts union tags and markers such as `[key]` into locations; they are skipped by
    walking the data itself.
    """
    path: list = []
    for element in loc:
        if isinstance(data, dict) and element in data:
            data = data[element]
            path.append(element)
        elif isinstance(data, dict) and str(element) in {str(k) for k in data}:
            key = next(k for k in data if str(k) == str(element))
            data = data[key]
            path.append(str(element))
        elif isinstance(data, list) and isinstance(element, int) and 0 <= element < len(data):
            data = data[element]
            path.append(element)
    return tuple(path)


def _model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class at a pydantic error location, choosing union members by their tag."""
    annotation: Any = root
    for element in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = {f.alias or n: f for n, f in annotation.model_fields.items()}
            if element not in fields:
                return None
            annotation = fields[element].annotation
        elif typing.get_origin(annotation) in (tuple, list):
            annotation = typing.get_args(annotation)[0]
        elif typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
        elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
            annotation = _member_tagged(annotation, element)
        else:
            return None
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _member_tagged(union: Any, tag: Any) -> Any:
    for member in typing.get_args(union):
        member = _unwrap(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            for info in member.model_fields.values():
                if typing.get_origin(info.annotation) is typing.Literal and tag in typing.get_args(
                    info.annotation
                ):
                    return member
    return None
