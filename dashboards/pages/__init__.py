"""The page registry: every dashboard page, in navigation order.

A page is a module with:

- `PATH` (the URL under /dashboard/; "" is the landing page), `TITLE`, `PERMISSION` (what a
  role needs to open it; callbacks may ask for more);
- `layout(study_id) -> component`, called per request by the router;
- `register(app)`, which declares the page's callbacks, each wrapped in
  `dashboards.security.requires(...)`.

Add a page by writing the module and adding it to `PAGES`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Protocol

from . import compliance, outcomes, overview, quality, queue, timeline, usage


class Page(Protocol):
    PATH: str
    TITLE: str
    PERMISSION: str

    def layout(self, study_id: int): ...

    def register(self, app) -> None: ...


PAGES: tuple[ModuleType, ...] = (
    overview,
    compliance,
    timeline,
    queue,
    outcomes,
    usage,
    quality,
)


def page_at(path: str) -> Page | None:
    """The page registered at `path` (without the /dashboard/ prefix), or None."""
    path = path.strip("/")
    return next((page for page in PAGES if path == page.PATH), None)  # type: ignore[return-value]
