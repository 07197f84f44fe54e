"""YAML to plain Python data that remembers the line of every key and sequence item.

The loader is the generic one of `instruments.datafile` (duplicate keys are errors, `19:00` is
a string, merge keys work); it is re-exported here for the protocol's callers.
"""

from __future__ import annotations

from instruments.datafile import Path, YamlDocument, load_yaml

__all__ = ["Path", "YamlDocument", "load_yaml"]
