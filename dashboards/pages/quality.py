"""Data quality: straight-lining, speeding, out-of-window answers, duplicate contacts (codes
only) and free-text answers (shown as text), each a table with its CSV."""

from __future__ import annotations

from dash import html

from study.web.context import db

from ..components import (
    View,
    filter_bar,
    filter_states,
    on_filters,
    register_download,
    table,
    table_section,
)
from ..queries.outcomes import study_waves
from ..queries.quality import (
    SECONDS_PER_ITEM,
    STRAIGHT_LINE_MIN_ITEMS,
    duplicate_contacts,
    free_text_answers,
    out_of_window,
    responses_frame,
    speeding,
    straight_lining,
)

PATH = "quality"
TITLE = "Data quality"
PERMISSION = "view_study"
ID = "quality"
TABLES = {
    "straight": f"Straight-lining (at least {STRAIGHT_LINE_MIN_ITEMS} answers, all the same)",
    "speeding": f"Speeding (under {SECONDS_PER_ITEM:g} s per answered item)",
    "window": "Submitted outside the window",
    "duplicates": "Participants sharing a phone number or email address",
    "text": "Free-text answers",
}


def layout(study_id: int):
    view = View.of(study_id)
    waves = study_waves(db(), study_id)
    sections = [table_section(ID, name, title) for name, title in TABLES.items()]
    return html.Div([filter_bar(ID, view, waves=waves, dates="Submitted"), *sections])


def _table(view: View, name: str, *values):
    filters = view.filters(*values)
    session = db()
    if name == "duplicates":
        return duplicate_contacts(session, view.study_id, filters)
    if name == "text":
        return free_text_answers(session, view.study_id, filters)
    check = {"straight": straight_lining, "speeding": speeding, "window": out_of_window}[name]
    return check(responses_frame(session, view.study_id, filters))


def register(app) -> None:
    @on_filters(app, ID, [(name, "children") for name in TABLES], PERMISSION)
    def update(view: View, *values):
        filters = view.filters(*values)
        session = db()
        responses = view.label_arms(responses_frame(session, view.study_id, filters))
        return (
            table(straight_lining(responses)),
            table(speeding(responses)),
            table(out_of_window(responses)),
            table(duplicate_contacts(session, view.study_id, filters)),
            table(view.label_arms(free_text_answers(session, view.study_id, filters))),
        )

    for name in TABLES:
        register_download(
            app, ID, name, lambda view, *v, name=name: _table(view, name, *v), filter_states(ID)
        )
