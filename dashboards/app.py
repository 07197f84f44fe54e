"""The Dash app, mounted into the study server at /dashboard/ by `init_app(app)`.

One Dash instance per Flask app, created inside `create_app` and kept on
`app.extensions["dashboards"]`; nothing lives at module level. The shell (header, study
selector, navigation) is a layout function, so it is built per request for whoever is signed
in; a router callback draws the page the URL names, from `dashboards.pages.PAGES`.
"""

from __future__ import annotations

from pathlib import Path

from dash import Dash, Input, Output, dcc, html
from flask import Flask, request

from study.web.context import db

from . import security
from .components import notice, who
from .pages import PAGES, Page, page_at
from .queries import studies

PREFIX = "/dashboard/"
ASSETS = Path(__file__).parent / "assets"


class _NoncedDash(Dash):
    """Dash whose index page carries this response's CSP nonce on its inline scripts."""

    def interpolate_index(self, **kwargs):
        value = security.nonce()
        for part in ("renderer", "scripts"):
            kwargs[part] = (
                kwargs.get(part, "")
                .replace(
                    '<script id="_dash-renderer"', f'<script nonce="{value}" id="_dash-renderer"'
                )
                .replace("<script>", f'<script nonce="{value}">')
            )
        return super().interpolate_index(**kwargs)


def init_app(app: Flask) -> Dash:
    """Mount the dashboards on `app` at /dashboard/, behind sign-in, CSRF and a strict CSP."""
    dashboard = _NoncedDash(
        __name__,
        server=app,
        url_base_pathname=PREFIX,
        assets_folder=str(ASSETS),
        title="Flourish dashboards",
        update_title=None,
        suppress_callback_exceptions=True,  # pages' components appear only once routed to
        serve_locally=True,
        compress=False,
        csrf_token_name=security.CSRF_COOKIE,
        csrf_header_name="X-CSRFToken",
        enable_mcp=False,
    )
    security.install(app, PREFIX)
    dashboard.layout = _shell
    _register_router(dashboard)
    for page in PAGES:
        page.register(dashboard)
    app.extensions["dashboards"] = dashboard
    return dashboard


def _shell():
    # Dash also builds the layout once to validate it, on the first request the server gets,
    # whatever its path (/healthz on a database not yet migrated, say): only a dashboard
    # request may query the database.
    choices = studies(db()) if request.path.startswith(PREFIX) else []
    options = [{"label": f"{study.title} ({study.slug})", "value": study.id} for study in choices]
    return html.Div(
        [
            dcc.Location(id="url"),
            html.Header(
                [
                    html.H1("Flourish dashboards"),
                    html.Label(
                        [
                            "Study",
                            dcc.Dropdown(
                                id="study",
                                options=options,
                                value=choices[0].id if choices else None,
                                clearable=False,
                            ),
                        ],
                        className="study",
                    ),
                    html.Span(who(), className="who"),
                ]
            ),
            html.Nav([dcc.Link(page.TITLE, href=PREFIX + page.PATH) for page in PAGES]),
            html.Main(id="page"),
        ]
    )


def _register_router(dashboard: Dash) -> None:
    @dashboard.callback(
        Output("page", "children"), Input("url", "pathname"), Input("study", "value")
    )
    @security.requires("view_study")
    def route(pathname, study_id):
        page: Page | None = page_at((pathname or "")[len(PREFIX) :])
        if page is None:
            return notice("There is no such dashboard page; choose one above.")
        if not security.can(page.PERMISSION):
            return notice(f"Your role cannot see {page.TITLE.lower()}.")
        if study_id is None:
            return notice("No study is loaded yet: `flourish protocol load` registers one.")
        return [html.H2(page.TITLE), page.layout(int(study_id))]
