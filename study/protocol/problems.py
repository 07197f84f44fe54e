"""What is wrong with a protocol, located by file, line and field.

`Problem` and `format_path` are the generic ones of `instruments.datafile`, the layer every
Flourish data file loads through; they are re-exported here for the protocol's callers.
"""

from __future__ import annotations

from instruments.datafile import DataFileError, Problem, format_path

__all__ = ["Problem", "ProtocolError", "format_path"]


class ProtocolError(DataFileError):
    """A protocol failed to load; `.problems` lists every mistake found, in file order."""
