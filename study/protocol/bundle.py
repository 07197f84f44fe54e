"""How a protocol version is stored: one JSON document holding every file it consists of.

`ProtocolVersion.source` is a single text column. Storing only the protocol YAML would make a
stored version unreadable once its constitution or consent document changed or vanished on
disk, and its content hash (which covers those files) unverifiable. So the column holds a
bundle: the protocol text verbatim plus the text of each referenced file, keyed by the path the
protocol uses. JSON rather than YAML because it round-trips any text exactly (trailing spaces,
CRLF line endings, tabs) without style decisions, and every tool can read it.
"""

from __future__ import annotations

import json

from .parse import Protocol, parse_protocol
from .problems import Problem, ProtocolError

FORMAT = "flourish-protocol-bundle/1"


def to_bundle(protocol: Protocol) -> str:
    """The stored form of `protocol`: its source and referenced files' text as JSON."""
    document = {
        "format": FORMAT,
        "source_name": protocol.source_name,
        "content_hash": protocol.content_hash,
        "protocol": protocol.source_text,
        "files": {path: ref.text for path, ref in sorted(protocol.referenced_files.items())},
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def from_bundle(source: str, source_name: str = "<stored protocol>") -> Protocol:
    """Re-parse a stored bundle without touching the disk, and verify its content hash."""
    try:
        document = json.loads(source)
    except json.JSONDecodeError as exc:
        problem = Problem(source_name, exc.lineno, "", f"not a bundle: {exc.msg}")
        raise ProtocolError([problem]) from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ProtocolError([Problem(source_name, 1, "", f"not a {FORMAT} document")])
    protocol = parse_protocol(
        document["protocol"], document.get("source_name") or source_name, files=document["files"]
    )
    stored_hash = document.get("content_hash")
    if stored_hash and stored_hash != protocol.content_hash:
        raise ProtocolError(
            [Problem(source_name, 1, "", "content does not match its recorded hash")]
        )
    return protocol
