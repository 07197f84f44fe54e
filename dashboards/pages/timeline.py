"""Participant timeline: one participant's occasions, messages and assistant turns, found by
code; contact details on request for coordinators and above, every look audited."""

from __future__ import annotations

import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html

from consent.roster import reveal_contacts
from study.web.auth import current_actor
from study.web.context import db, services

from ..components import View, notice, register_download, table, table_section
from ..queries import find_participant, participants_frame, timeline
from ..security import can, requires

PATH = "participant"
TITLE = "Participant timeline"
PERMISSION = "view_study"
ID = "timeline"
SYMBOLS = {"occasion": "square", "message": "circle", "interaction": "diamond"}


def layout(study_id: int):
    contact = []
    if can("view_contacts"):
        contact = [
            html.Button("Show contact details", id=f"{ID}-reveal", className="reveal"),
            html.Div(id=f"{ID}-contacts"),
        ]
    return html.Div(
        [
            html.Div(
                html.Label(
                    [
                        "Participant code",
                        dcc.Input(id=f"{ID}-code", type="search", debounce=True, placeholder="P-…"),
                    ],
                    className="filter",
                ),
                className="filters",
            ),
            html.Div(id=f"{ID}-summary"),
            *contact,
            html.Section(dcc.Graph(id=f"{ID}-chart"), className="card"),
            table_section(ID, "events", "Timeline"),
        ]
    )


def _events(view: View, code):
    participant = find_participant(db(), view.study_id, code or "")
    if participant is None:
        return timeline(db(), -1)
    return timeline(db(), participant.id)


def register(app) -> None:
    @app.callback(
        Output(f"{ID}-summary", "children"),
        Output(f"{ID}-chart", "figure"),
        Output(f"{ID}-events", "children"),
        Input(f"{ID}-code", "value"),
        State("study", "value"),
    )
    @requires(PERMISSION)
    def update(code, study_id):
        view = View.of(int(study_id))
        participant = find_participant(db(), view.study_id, code or "")
        if participant is None:
            text = "Type a participant code." if not code else f"No participant {code} here."
            return notice(text), go.Figure(), None
        people = participants_frame(db(), view.study_id)
        row = people[people["participant"] == participant.code].iloc[0]
        events = timeline(db(), participant.id)
        facts = [f"{participant.code}: {participant.status}"]
        if row["arm"] is not None:
            facts.append(view.arm_label(row["arm"]))
        if participant.enrolled_at is not None:
            facts.append(f"enrolled {participant.enrolled_at:%Y-%m-%d}")
        return html.P(", ".join(facts), className="summary"), figure(events), table(events)

    @app.callback(
        Output(f"{ID}-contacts", "children"),
        Input(f"{ID}-reveal", "n_clicks"),
        State(f"{ID}-code", "value"),
        State("study", "value"),
        prevent_initial_call=True,
    )
    @requires("view_contacts")
    def contacts(n_clicks, code, study_id):
        session = db()
        participant = find_participant(session, int(study_id), code or "")
        if participant is None:
            return notice("Find a participant first.")
        shown = reveal_contacts(
            session,
            services().pii,
            [participant],
            actor=current_actor(),
            now=services().clock.now(),
        )
        session.commit()
        details = shown.get(participant.id, [])
        if not details:
            return notice("No contact details are stored.")
        items = [
            html.Li(
                f"{d.kind}: {d.value}"
                + (" (verified)" if d.verified else "")
                + (" (opted out)" if d.opted_out else "")
            )
            for d in details
        ]
        return html.Ul(items, className="contacts")

    register_download(app, ID, "events", _events, [State(f"{ID}-code", "value")])


def figure(events) -> go.Figure:
    chart = go.Figure()
    for kind, group in events.groupby("type"):
        chart.add_scatter(
            x=group["at"],
            y=group["type"],
            mode="markers",
            name=kind,
            marker={"symbol": SYMBOLS.get(kind, "circle"), "size": 10},
            text=group["item"] + " " + group["status"],
            hovertemplate="%{x}: %{text}<extra></extra>",
        )
    chart.update_layout(
        title="Timeline (UTC)",
        height=260,
        showlegend=False,
        margin={"l": 90, "r": 20, "t": 50, "b": 40},
    )
    return chart
