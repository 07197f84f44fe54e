"""Study protocols as validated data files.

    protocol = load_protocol("examples/protocols/assistant-flourishing-rct.yaml")
    protocol.model.arms, protocol.model.allocation, protocol.model.schedule, ...
    protocol.content_hash  # covers the protocol and every file it refers to

Both loaders raise `ProtocolError`, whose `.problems` lists every mistake as
`FILE:LINE: field: message`. See docs/protocol.md for the language itself.
"""

from .parse import Protocol, ReferencedFile, content_hash, load_protocol, parse_protocol
from .problems import Problem, ProtocolError
from .schema import ProtocolModel
from .types import Duration

__all__ = [
    "Duration",
    "Problem",
    "Protocol",
    "ProtocolError",
    "ProtocolModel",
    "ReferencedFile",
    "content_hash",
    "load_protocol",
    "parse_protocol",
]
