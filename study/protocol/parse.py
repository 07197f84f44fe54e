"""From protocol text to a validated `Protocol`, or a `ProtocolError` listing every problem.

The pipeline: YAML with line numbers -> root keys -> each section against its schema (so a
mistake in one section does not hide mistakes in another) -> cross-field checks on the
sections that passed -> the files the protocol refers to. Only when nothing is wrong is the
whole `ProtocolModel` built.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from .checks import cross_check, suggest
from .problems import Problem, ProtocolError, format_path
from .schema import ProtocolModel, ScheduleEntry
from .yamlsource import YamlDocument, load_yaml

FileReader = Callable[[str], bytes | None]


@dataclass(frozen=True)
class ReferencedFile:
    """A file the protocol names (constitution, system prompt, consent document, instrument)."""

    path: str
    sha256: str
    text: str


@dataclass(frozen=True)
class Protocol:
    """A validated protocol: the model, its verbatim source and the hash of all its content."""

    model: ProtocolModel
    source_text: str
    source_name: str
    content_hash: str
    referenced_files: Mapping[str, ReferencedFile]
    lines: Mapping[tuple, int] = field(default_factory=dict, repr=False)

    @property
    def slug(self) -> str:
        return self.model.study.slug

    def line_of(self, *path: str | int) -> int:
        """The line where `path` (e.g. `"arms", 1, "assistant"`) is written in the source."""
        return YamlDocument(None, dict(self.lines)).line_of(path)

    def file_text(self, relative_path: str) -> str:
        """The text of a referenced file, by the path the protocol gives for it."""
        return self.referenced_files[normalise(relative_path)].text

    def assistant_instructions(self, arm_key: str) -> str | None:
        """The system prompt or constitution of an arm's assistant; None for a no-assistant arm."""
        assistant = self.model.arm(arm_key).assistant
        return None if assistant is None else self.file_text(assistant.instructions_file)


def normalise(relative_path: str) -> str:
    """The canonical form of a path relative to the protocol file (POSIX separators)."""
    return posixpath.normpath(relative_path.replace("\\", "/"))


def content_hash(source_text: str, files: Mapping[str, bytes]) -> str:
    """SHA-256 over the protocol's bytes and every referenced file's path and bytes.

    Each part is framed by its name and length, so no two different sets of files can run
    together into the same byte stream.
    """
    digest = hashlib.sha256()

    def part(name: str, data: bytes) -> None:
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)

    part("protocol", source_text.encode("utf-8"))
    for path in sorted(files):
        part(f"file:{path}", files[path])
    return digest.hexdigest()


def load_protocol(path: str | Path) -> Protocol:
    """Read and validate the protocol file at `path`; its references resolve next to it."""
    path = Path(path)
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProtocolError([Problem(name, None, "", f"cannot read: {exc.strerror}")]) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ProtocolError([Problem(name, line, "", "the file is not UTF-8 text")]) from exc
    return parse_protocol(text, name, path.parent)


def parse_protocol(
    text: str,
    source_name: str = "<protocol>",
    base_dir: str | Path | None = None,
    *,
    files: Mapping[str, str] | None = None,
) -> Protocol:
    """Validate protocol `text`, naming `source_name` in problems.

    Referenced files are read from `base_dir` (default: the current directory) or, when
    `files` is given, from that mapping of relative path to text (a stored version's bundle).
    """
    if files is not None:
        bundled = {normalise(p): t.encode("utf-8") for p, t in files.items()}
        reader: FileReader = bundled.get
    else:
        reader = _disk_reader(Path(base_dir) if base_dir is not None else Path("."))
    return _Parser(text, source_name, reader).run()


def _disk_reader(base_dir: Path) -> FileReader:
    def read(relative: str) -> bytes | None:
        target = base_dir / relative
        try:
            return target.read_bytes() if target.is_file() else None
        except OSError:
            return None

    return read


class _Parser:
    def __init__(self, text: str, source_name: str, reader: FileReader) -> None:
        self.text = text
        self.source = source_name
        self.reader = reader
        self.problems: list[Problem] = []
        self.doc = YamlDocument(None)

    def problem(self, path: tuple, message: str, *, line: int | None = None) -> None:
        where = self.doc.line_of(path) if line is None else line
        self.problems.append(Problem(self.source, where, format_path(path), message))

    def run(self) -> Protocol:
        self.doc, syntax = load_yaml(self.text, self.source)
        self.problems += syntax
        data = self.doc.data
        if any(not p.field for p in syntax):
            raise ProtocolError(self.problems)
        if not isinstance(data, dict):
            what = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
            self.problem((), f"the protocol is {what}; it must be a mapping of sections")
            raise ProtocolError(self.problems)

        sections = self._sections(data)
        for path, message in cross_check(sections):
            self.problem(path, message)
        files = self._files(sections)
        if self.problems:
            raise ProtocolError(self.problems)
        model = ProtocolModel.model_validate(data)
        raw = {path: content for path, (content, _) in files.items()}
        return Protocol(
            model=model,
            source_text=self.text,
            source_name=self.source,
            content_hash=content_hash(self.text, raw),
            referenced_files={
                path: ReferencedFile(path, hashlib.sha256(content).hexdigest(), text)
                for path, (content, text) in files.items()
            },
            lines=dict(self.doc.lines),
        )

    def _files(self, sections: dict[str, Any]) -> dict[str, tuple[bytes, str]]:
        files: dict[str, tuple[bytes, str]] = {}
        for path, relative in _references(sections):
            key = normalise(relative)
            if key in files:
                continue
            content = self.reader(key)
            if content is None:
                self.problem(
                    path, f"file not found: '{relative}' (paths are relative to the protocol file)"
                )
                continue
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError:
                self.problem(path, f"'{relative}' is not UTF-8 text")
                continue
            files[key] = (content, text)
        return files

    def _sections(self, data: dict) -> dict[str, Any]:
        fields = ProtocolModel.model_fields
        for key in data:
            if key not in fields:
                self._unknown((), str(key), list(fields))
        valid: dict[str, Any] = {}
        for name, info in fields.items():
            if name not in data:
                if info.is_required():
                    self.problem((), f"missing required section '{name}'", line=1)
                continue
            try:
                valid[name] = _adapter(name).validate_python(data[name])
            except ValidationError as exc:
                errors = exc.errors(include_url=False)
                for error in errors:
                    if not _hidden_by_others(error, errors):
                        self._translate((name, *error["loc"]), error)
                if name == "schedule":
                    valid["schedule_entries"] = _valid_entries(data[name])
        return valid

    def _unknown(self, parent: tuple, key: str, allowed: list[str]) -> None:
        hint = suggest(key, allowed)
        if not hint:
            hint = f" (allowed here: {', '.join(allowed)})"
        self.problem((*parent, key), f"unknown key '{key}'{hint}")

    def _translate(self, loc: tuple, error: dict) -> None:
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
            model = _model_at(loc[:-1])
            allowed = [f.alias or n for n, f in model.model_fields.items()] if model else []
            self._unknown(path[:-1], str(path[-1]), allowed)
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


def _hidden_by_others(error: dict, errors: list[dict]) -> bool:
    """A list's "too short" is noise when its items failed: pydantic counts only valid items."""
    if error["type"] != "too_short":
        return False
    loc = error["loc"]
    return any(len(other["loc"]) > len(loc) and other["loc"][: len(loc)] == loc for other in errors)


def _valid_entries(schedule: Any) -> dict[str, Any]:
    """The schedule entries that are valid on their own, so their timing can still be checked."""
    if not isinstance(schedule, dict):
        return {}
    adapter = _entry_adapter()
    valid = {}
    for name, entry in schedule.items():
        try:
            valid[str(name)] = adapter.validate_python(entry)
        except ValidationError:
            continue
    return valid


@cache
def _entry_adapter() -> TypeAdapter:
    return TypeAdapter(ScheduleEntry)


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


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The model class at a pydantic error location, choosing union members by their tag."""
    annotation: Any = ProtocolModel
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


@cache
def _adapter(section: str) -> TypeAdapter:
    info = ProtocolModel.model_fields[section]
    if not info.metadata:
        return TypeAdapter(info.annotation)
    return TypeAdapter(typing.Annotated[info.annotation, *info.metadata])


# --- referenced files ---------------------------------------------------------------------------


def _references(sections: dict[str, Any]) -> list[tuple[tuple, str]]:
    """Every (field path, relative path) naming a file, in the valid sections."""
    found: list[tuple[tuple, str]] = []
    for i, arm in enumerate(sections.get("arms") or ()):
        if arm.assistant is None:
            continue
        for name in ("system_prompt_file", "constitution_file"):
            value = getattr(arm.assistant, name)
            if value:
                found.append((("arms", i, "assistant", name), value))
    consent = sections.get("consent")
    if consent is not None:
        found.append((("consent", "document"), consent.document))
    for i, ref in enumerate(sections.get("instruments") or ()):
        if ref.file:
            found.append((("instruments", i, "file"), ref.file))
    return found
