"""Compliance: participants x occasions, response rate by wave and arm, late and missed
occasions, delivery failures by channel."""

from __future__ import annotations

import plotly.graph_objects as go
from dash import dcc, html
from sqlalchemy import func
from sqlmodel import select

from study.models import Occasion, Participant
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
from ..queries import (
    compliance_frame,
    delivery_failures,
    late_and_missed,
    response_rates,
    status_matrix,
)
from ..queries.compliance import STATUS_CODES

PATH = "compliance"
TITLE = "Compliance"
PERMISSION = "view_study"
ID = "compliance"
# One colour per status, from red (missed) to green (completed); grey for cancelled.
COLOURS = {
    "missed": "#c0392b",
    "cancelled": "#bdbdbd",
    "scheduled": "#f5f5f5",
    "sent": "#fdd49e",
    "delivered": "#fdbb84",
    "opened": "#c7e9c0",
    "partial": "#74c476",
    "completed": "#238b45",
}


def layout(study_id: int):
    view = View.of(study_id)
    waves = db().exec(
        select(Occasion.wave)
        .join(Participant, Participant.id == Occasion.participant_id)
        .where(Participant.study_id == study_id, Occasion.kind != "ema")
        .group_by(Occasion.wave)
        .order_by(func.min(Occasion.wave))
    )
    return html.Div(
        [
            filter_bar(ID, view, waves=list(waves), dates="Due"),
            html.Section(dcc.Graph(id=f"{ID}-heatmap"), className="card"),
            html.Section(dcc.Graph(id=f"{ID}-rates-chart"), className="card"),
            table_section(ID, "rates", "Response rate by wave and arm"),
            table_section(ID, "late", "Late and missed"),
            table_section(ID, "failures", "Delivery failures by channel"),
            table_section(ID, "occasions", "Occasions"),
        ]
    )


def _frames(view: View, *values):
    now = services().clock.now()
    return compliance_frame(db(), view.study_id, now=now, filters=view.filters(*values))


def _table(view: View, name: str, *values):
    occasions, messages = _frames(view, *values)
    return {
        "rates": lambda: response_rates(occasions),
        "late": lambda: late_and_missed(occasions),
        "failures": lambda: delivery_failures(messages),
        "occasions": lambda: occasions.drop(columns=["due"]),
    }[name]()


def register(app) -> None:
    tables = [(name, "children") for name in ("rates", "late", "failures", "occasions")]
    outputs = [("heatmap", "figure"), ("rates-chart", "figure"), *tables]

    @on_filters(app, ID, outputs, PERMISSION)
    def update(view: View, *filters):
        occasions, messages = _frames(view, *filters)
        occasions = view.label_arms(occasions)
        rates = response_rates(occasions)
        return (
            heatmap(status_matrix(occasions)),
            rates_figure(rates),
            table(rates),
            table(late_and_missed(occasions)),
            table(delivery_failures(messages)),
            table(occasions.drop(columns=["due"])),
        )

    for name in ("rates", "late", "failures", "occasions"):
        register_download(
            app, ID, name, lambda view, *v, name=name: _table(view, name, *v), filter_states(ID)
        )


def heatmap(matrix) -> go.Figure:
    """Participants (rows) x occasions (columns), coloured by status."""
    figure = go.Figure()
    if matrix.empty:
        return figure.update_layout(title="No occasions for these filters")
    codes = matrix.apply(lambda column: column.map(STATUS_CODES))
    top = len(STATUS_CODES) - 1
    scale = []
    for status, code in STATUS_CODES.items():
        scale += [(code / (top + 1), COLOURS[status]), ((code + 1) / (top + 1), COLOURS[status])]
    figure.add_heatmap(
        z=codes.to_numpy(dtype=float),
        x=list(matrix.columns),
        y=list(matrix.index),
        text=matrix.fillna("").to_numpy(),
        hovertemplate="%{y} %{x}: %{text}<extra></extra>",
        colorscale=scale,
        zmin=-0.5,
        zmax=top + 0.5,
        colorbar={
            "tickvals": list(STATUS_CODES.values()),
            "ticktext": list(STATUS_CODES),
        },
    )
    figure.update_layout(
        title=f"Occasions of {len(matrix)} participants",
        height=min(1200, 160 + 12 * len(matrix)),
        yaxis={"showticklabels": len(matrix) <= 60, "autorange": "reversed"},
        margin={"l": 90, "r": 20, "t": 50, "b": 60},
    )
    return figure


def rates_figure(rates) -> go.Figure:
    figure = go.Figure()
    for arm, group in rates.groupby("arm"):
        figure.add_scatter(
            x=group["wave"], y=group["response_rate"], mode="lines+markers", name=arm
        )
    figure.update_layout(
        title="Response rate by wave",
        xaxis_title="wave",
        yaxis={"title": "completed / due", "range": [0, 1.05]},
        height=320,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
    )
    return figure
