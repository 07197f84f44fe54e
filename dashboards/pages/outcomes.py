"""Outcomes: the mean of an outcome score per arm and wave with its 95% CI, blinded as
"Arm A", "Arm B", ... for every role until an investigator unblinds the study (audited)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html, no_update

from analysis.dataset import DatasetError
from study import blinding
from study.web.auth import current_actor
from study.web.context import db, services

from ..components import (
    View,
    filter_bar,
    filter_states,
    notice,
    on_filters,
    register_download,
    table,
    table_section,
)
from ..queries.outcomes import (
    TRAJECTORY_COLUMNS,
    outcome_columns,
    outcome_data,
    study_waves,
    trajectories,
)
from ..security import can, requires

PATH = "outcomes"
TITLE = "Outcomes"
PERMISSION = "view_study"
ID = "outcomes"


def layout(study_id: int):
    view = View.of(study_id, outcomes=True)
    session = db()
    outcomes = outcome_columns(session, study_id)
    return html.Div(
        [
            filter_bar(ID, view, waves=study_waves(session, study_id)),
            html.Label(
                [
                    "Outcome",
                    dcc.Dropdown(
                        id=f"{ID}-outcome",
                        options=outcomes,
                        value=default_outcome(outcomes),
                        clearable=False,
                    ),
                ],
                className="filter",
            ),
            _blinding_card(study_id),
            html.Section(dcc.Graph(id=f"{ID}-chart"), className="card"),
            table_section(ID, "trajectories", "Outcome by arm and wave"),
        ]
    )


def default_outcome(outcomes: list[str]) -> str | None:
    """The first 0-100 percentage score (WHO-5's), else the first score of all."""
    return next((name for name in outcomes if name.endswith("_percentage")), None) or next(
        iter(outcomes), None
    )


def _blinding_card(study_id: int) -> html.Section:
    done = blinding.unblinding(db(), study_id)
    if done is not None:
        status = f"Unblinded on {done.at:%Y-%m-%d %H:%M} UTC by {done.actor}: {done.reason}"
        return html.Section(
            [html.P(status, className="unblinded"), html.Div(id=f"{ID}-unblinded")],
            className="card",
        )
    form = [
        html.P(
            "Blinded: arms appear as letters to every role until an investigator unblinds "
            "the study. Unblinding is for the whole study, for good, and audited.",
            className="notice",
        )
    ]
    if can("unblind"):
        form += [
            html.Label(
                ["Reason for unblinding", dcc.Textarea(id=f"{ID}-reason", maxLength=1000)],
                className="filter",
            ),
            html.Button("Unblind study", id=f"{ID}-unblind", className="unblind"),
        ]
    return html.Section(
        [html.Div(form, id=f"{ID}-blinded"), html.Div(id=f"{ID}-unblinded")], className="card"
    )


def _trajectories(view: View, outcome: str | None, *values):
    """The table for `outcome`, arms labelled before grouping so row order reveals nothing."""
    data = view.label_arms(outcome_data(db(), view.study_id, view.filters(*values)))
    if outcome not in data.columns:  # no outcome scheduled, or one of another study
        return pd.DataFrame(columns=TRAJECTORY_COLUMNS)
    return trajectories(data, outcome)


def register(app) -> None:
    extra = [Input(f"{ID}-outcome", "value"), Input(f"{ID}-unblinded", "children")]

    @on_filters(
        app, ID, [("chart", "figure"), ("trajectories", "children")], PERMISSION, extra=extra
    )
    def update(view: View, *values):
        *filters, outcome, _unblinded = values
        try:
            frame = _trajectories(View.of(view.study_id, outcomes=True), outcome, *filters)
        except DatasetError as exc:  # a stored answer the instrument cannot score
            return trajectory_figure(pd.DataFrame(columns=["arm"]), None), notice(str(exc))
        return trajectory_figure(frame, outcome), table(frame)

    @app.callback(
        Output(f"{ID}-unblinded", "children"),
        Output(f"{ID}-blinded", "hidden"),
        Output(f"{ID}-arm", "options"),
        Output(f"{ID}-arm", "value"),
        Input(f"{ID}-unblind", "n_clicks"),
        State(f"{ID}-reason", "value"),
        State("study", "value"),
        prevent_initial_call=True,
    )
    @requires("unblind")
    def unblind(n_clicks, reason, study_id):
        session = db()
        try:
            done = blinding.unblind(
                session,
                int(study_id),
                actor=current_actor(),
                reason=reason or "",
                now=services().clock.now(),
            )
        except blinding.BlindingError as exc:
            session.rollback()
            return notice(f"Not unblinded: {exc}."), False, no_update, no_update
        session.commit()
        # The arm filter offered letters; from now on it offers the arms' keys.
        view = View.of(int(study_id), outcomes=True)
        text = f"Unblinded on {done.at:%Y-%m-%d %H:%M} UTC by {done.actor}: {done.reason}"
        return html.P(text, className="unblinded"), True, sorted(view.labels.values()), []

    def produce(view: View, *values):
        *filters, outcome = values
        return _trajectories(View.of(view.study_id, outcomes=True), outcome, *filters)

    states = [*filter_states(ID), State(f"{ID}-outcome", "value")]
    register_download(app, ID, "trajectories", produce, states)


def trajectory_figure(frame, outcome: str | None) -> go.Figure:
    """Mean ± 95% CI per wave, a line per arm, arms nudged apart so the bars do not overlap."""
    figure = go.Figure()
    arms = list(dict.fromkeys(frame["arm"]))
    for number, arm in enumerate(arms):
        group = frame[frame["arm"] == arm]
        nudge = (number - (len(arms) - 1) / 2) * 0.08
        figure.add_scatter(
            x=group["wave"] + nudge,
            y=group["mean"],
            error_y={
                "type": "data",
                "array": group["ci_high"] - group["mean"],
                "arrayminus": group["mean"] - group["ci_low"],
            },
            customdata=group[["n", "ci_low", "ci_high"]].to_numpy(),
            hovertemplate=f"{arm}<br>mean %{{y:.2f}}, 95% CI %{{customdata[1]:.2f}} to "
            "%{customdata[2]:.2f} (n = %{customdata[0]})<extra></extra>",
            mode="lines+markers",
            name=arm,
        )
    figure.update_layout(
        title=f"{outcome or 'No outcome'}: mean and 95% CI by arm" if arms else "No scores yet",
        xaxis={"title": "wave", "dtick": 1},
        yaxis_title=outcome or "",
        height=380,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
    )
    return figure
