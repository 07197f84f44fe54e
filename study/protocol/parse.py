"""From protocol text to a validated `Protocol`, or a `ProtocolError` listing every problem.

The pipeline: YAML with line numbers -> root keys -> each section against its schema (so a
mistake in one section does not hide mistakes in another) -> cross-field checks on the
sections that passed -> the files the protocol refers to. Only when nothing is wrong is the
whole `ProtocolModel` built.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from instruments.catalogue import Library
from instruments.datafile import DataFile, YamlDocument, read_text
from instruments.schema import Instrument

from .checks import cross_check
from .instruments import resolve_instruments, shipped_library
from .problems import ProtocolError
from .schema import ProtocolModel, ScheduleEntry

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
    # Each declared instrument's definition (library or study file), with its wording merged.
    instruments: Mapping[str, Instrument] = field(default_factory=dict, repr=False)

    @property
    def slug(self) -> str:
        return self.model.study.slug

    def line_of(self, *path: str | int) -> int:
        """The line where `path` (e.g. `"arms", 1, "assistant"`) is written in the source."""
        return YamlDocument(None, dict(self.lines)).line_of(path)

    def instrument(self, instrument_id: str) -> Instrument:
        """The definition of a declared instrument (KeyError if the protocol does not use it)."""
        return self.instruments[instrument_id]

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


def load_protocol(path: str | Path, *, library: Library | None = None) -> Protocol:
    """Read and validate the protocol file at `path`; its references resolve next to it.

    Instrument ids are checked against `library` (default: the shipped library).
    """
    path = Path(path)
    text, problems = read_text(path)
    if text is None:
        raise ProtocolError(problems)
    return parse_protocol(text, str(path), path.parent, library=library)


def parse_protocol(
    text: str,
    source_name: str = "<protocol>",
    base_dir: str | Path | None = None,
    *,
    files: Mapping[str, str] | None = None,
    library: Library | None = None,
) -> Protocol:
    """Validate protocol `text`, naming `source_name` in problems.

    Referenced files are read from `base_dir` (default: the current directory) or, when
    `files` is given, from that mapping of relative path to text (a stored version's bundle).
    Instrument ids are checked against `library` (default: the shipped library; a deployment
    that excludes non-commercial instruments passes its filtered library).
    """
    if files is not None:
        bundled = {normalise(p): t.encode("utf-8") for p, t in files.items()}
        reader: FileReader = bundled.get
    else:
        reader = _disk_reader(Path(base_dir) if base_dir is not None else Path("."))
    return _Parser(text, source_name, reader, library or shipped_library()).run()


def _disk_reader(base_dir: Path) -> FileReader:
    def read(relative: str) -> bytes | None:
        target = base_dir / relative
        try:
            return target.read_bytes() if target.is_file() else None
        except OSError:
            return None

    return read


class _Parser:
    def __init__(self, text: str, source_name: str, reader: FileReader, library: Library) -> None:
        self.file = DataFile(text, source_name)
        self.reader = reader
        self.library = library

    def problem(self, path: tuple, message: str) -> None:
        self.file.problem(path, message)

    def run(self) -> Protocol:
        data = self.file.mapping("the protocol", "a mapping of sections")
        if data is None:
            raise ProtocolError(self.file.problems)
        sections = self.file.sections(data, ProtocolModel)
        if "schedule" in data and "schedule" not in sections:
            # A schedule with a broken entry still has its other entries checked.
            sections["schedule_entries"] = _valid_entries(data["schedule"])
        for path, message in cross_check(sections):
            self.problem(path, message)
        files = self._files(sections)
        texts = {path: text for path, (_, text) in files.items()}
        resolved = resolve_instruments(sections, texts, self.library, self.file.source)
        for path, message in resolved.findings:
            self.problem(path, message)
        self.file.problems += resolved.problems
        if self.file.problems:
            raise ProtocolError(self.file.problems)
        model = ProtocolModel.model_validate(data)
        raw = {path: content for path, (content, _) in files.items()}
        return Protocol(
            model=model,
            source_text=self.file.text,
            source_name=self.file.source,
            content_hash=content_hash(self.file.text, raw),
            referenced_files={
                path: ReferencedFile(path, hashlib.sha256(content).hexdigest(), text)
                for path, (content, text) in files.items()
            },
            lines=dict(self.file.doc.lines),
            instruments=resolved.instruments,
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
        for name in ("file", "wording"):
            if getattr(ref, name):
                found.append((("instruments", i, name), getattr(ref, name)))
    return found
