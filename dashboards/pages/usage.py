"""Assistant usage by arm and week since enrolment (sessions, turns, active minutes, night
share), and heavy-use alerts listing participant codes, with thresholds set on the page."""

from __future__ import annotations

import plotly.graph_objects as go
from dash import Input, State, dcc, html

from study.web.context import db, services

from ..components import (
    View,
    filter_bar,
    filter_states,
    on_filters,
    register_download,
    table,
    table_section,
)
from ..queries.usage import (
    HEAVY_ACTIVE_HOURS,
    HEAVY_NIGHT_SHARE,
    NIGHT_MIN_TURNS,
    heavy_use,
    usage_by_arm,
    weekly_usage,
)

PATH = "usage"
TITLE = "Assistant usage"
PERMISSION = "view_study"
ID = "usage"
TABLES = ("by-arm", "alerts", "weekly")


def layout(study_id: int):
    view = View.of(study_id)
    thresholds = html.Div(
        [
            _number("hours", "Alert above active hours per week", HEAVY_ACTIVE_HOURS, 0.5, None),
            _number("night", "or night share above", HEAVY_NIGHT_SHARE, 0.05, 1),
            html.P(
                f"Night share counts from {NIGHT_MIN_TURNS} turns in the week on; night is "
                "00:00-05:59 in the participant's time zone.",
                className="note",
            ),
        ],
        className="filters",
    )
    return html.Div(
        [
            filter_bar(ID, view),
            thresholds,
            html.Section(dcc.Graph(id=f"{ID}-chart"), className="card"),
            table_section(ID, "by-arm", "Usage by arm and week"),
            table_section(ID, "alerts", "Heavy-use alerts"),
            table_section(ID, "weekly", "Usage per participant and week"),
        ]
    )


def _number(name: str, text: str, value: float, step: float, top: float | None) -> html.Label:
    field = dcc.Input(
        id=f"{ID}-{name}", type="number", value=value, min=0, max=top, step=step, debounce=True
    )
    return html.Label([text, field], className="filter")


def _weekly(view: View, *values):
    now = services().clock.now()
    return view.label_arms(weekly_usage(db(), view.study_id, view.filters(*values), now=now))


def _alerts(view: View, *values):
    *filters, hours, night = values
    return heavy_use(
        _weekly(view, *filters),
        active_hours=HEAVY_ACTIVE_HOURS if hours is None else float(hours),
        night_share=HEAVY_NIGHT_SHARE if night is None else float(night),
    )


def register(app) -> None:
    thresholds = [Input(f"{ID}-hours", "value"), Input(f"{ID}-night", "value")]
    outputs = [("chart", "figure"), *[(name, "children") for name in TABLES]]

    @on_filters(app, ID, outputs, PERMISSION, extra=thresholds)
    def update(view: View, *values):
        weekly = _weekly(view, *values[:-2])
        by_arm = usage_by_arm(weekly)
        return (
            usage_figure(by_arm),
            table(by_arm),
            table(_alerts(view, *values)),
            table(weekly),
        )

    states = filter_states(ID)
    register_download(app, ID, "by-arm", lambda view, *v: usage_by_arm(_weekly(view, *v)), states)
    limits = [State(f"{ID}-hours", "value"), State(f"{ID}-night", "value")]
    register_download(app, ID, "alerts", _alerts, [*states, *limits])
    register_download(app, ID, "weekly", _weekly, states)


def usage_figure(by_arm) -> go.Figure:
    figure = go.Figure()
    for arm, group in by_arm.groupby("arm"):
        figure.add_scatter(
            x=group["week"], y=group["active_minutes"], mode="lines+markers", name=arm
        )
    figure.update_layout(
        title="Active minutes per participant and week",
        xaxis={"title": "week since enrolment", "dtick": 1},
        yaxis_title="mean active minutes",
        height=320,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
    )
    return figure
