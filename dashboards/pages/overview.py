"""Study overview: enrolment against target over time, and the CONSORT flow by arm."""

from __future__ import annotations

import plotly.graph_objects as go
from dash import dcc, html

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
from ..queries import consort_flow, enrollment_over_time

PATH = ""
TITLE = "Study overview"
PERMISSION = "view_study"
ID = "overview"


def layout(study_id: int):
    view = View.of(study_id)
    return html.Div(
        [
            filter_bar(ID, view, dates="Enrolled"),
            html.Section(dcc.Graph(id=f"{ID}-enrollment-chart"), className="card"),
            table_section(ID, "enrollment", "Enrolment by day"),
            table_section(ID, "consort", "CONSORT flow"),
        ]
    )


def _enrollment(view: View, *values):
    return enrollment_over_time(db(), view.study_id, view.filters(*values))


def _consort(view: View, *values):
    return consort_flow(db(), view.study_id, view.filters(*values))


def register(app) -> None:
    outputs = [("enrollment-chart", "figure"), ("enrollment", "children"), ("consort", "children")]

    @on_filters(app, ID, outputs, PERMISSION)
    def update(view: View, *filters):
        enrolled = _enrollment(view, *filters)
        consort = view.label_arms(_consort(view, *filters))
        return enrollment_figure(enrolled), table(enrolled), table(consort)

    register_download(app, ID, "enrollment", _enrollment, filter_states(ID))
    register_download(app, ID, "consort", _consort, filter_states(ID))


def enrollment_figure(enrolled) -> go.Figure:
    figure = go.Figure()
    figure.add_scatter(
        x=enrolled["date"], y=enrolled["cumulative"], mode="lines+markers", name="enrolled"
    )
    if not enrolled.empty and enrolled["target"].notna().any():
        figure.add_hline(
            y=float(enrolled["target"].iloc[0]),
            line_dash="dash",
            annotation_text=f"target {int(enrolled['target'].iloc[0])}",
        )
    figure.update_layout(
        title="Cumulative enrolment",
        xaxis_title="date (UTC)",
        yaxis_title="participants",
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
        height=320,
    )
    return figure
