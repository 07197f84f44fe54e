"""Which software made a result: recorded in reports and export metadata.

Kept apart from the report writer so that exports (and the CLI) need not import plotting.
"""

from __future__ import annotations

import platform
from importlib import metadata

VERSIONED = ("flourish", "numpy", "pandas", "statsmodels", "scipy", "plotly", "fpdf2")


def software_versions(packages: tuple[str, ...] = VERSIONED) -> dict[str, str]:
    """Python's version and each package's in `packages` ("not installed" if absent)."""
    versions = {"python": platform.python_version()}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
