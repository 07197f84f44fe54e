"""Message queue: the outbox's pending, sending, failed and undelivered messages, and a retry
of failed sends for those who fix deliveries (`manage_participants`), audited."""

from __future__ import annotations

from dash import Input, Output, State, dcc, html

from study.schedule.retry import retry_failed
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
from ..queries import message_queue
from ..security import can, requires

PATH = "queue"
TITLE = "Message queue"
PERMISSION = "view_study"
ID = "queue"


def layout(study_id: int):
    view = View.of(study_id)
    retry = []
    if can("manage_participants"):
        retry = [
            html.Section(
                [
                    html.H3("Retry failed sends"),
                    dcc.Checklist(id=f"{ID}-failed", options=[], value=[]),
                    html.Button("Retry selected", id=f"{ID}-retry", className="retry"),
                    html.Div(id=f"{ID}-retried"),
                ],
                className="card",
            )
        ]
    return html.Div(
        [
            filter_bar(ID, view, dates="Due"),
            table_section(ID, "messages", "Messages waiting or failed"),
            *retry,
        ]
    )


def _messages(view: View, *values):
    return message_queue(db(), view.study_id, view.filters(*values))


def register(app) -> None:
    after_retry = [Input(f"{ID}-retried", "children")]

    @on_filters(app, ID, [("messages", "children")], PERMISSION, extra=after_retry)
    def update(view: View, *values):
        *filters, _retried = values
        return table(_messages(view, *filters))

    @on_filters(app, ID, [("failed", "options")], "manage_participants", extra=after_retry)
    def failed_options(view: View, *values):
        *filters, _retried = values
        frame = _messages(view, *filters)
        failed = frame[frame["status"].isin(("failed", "undelivered"))]
        return [
            {
                "label": f"#{row.message_id} {row.participant} {row.purpose} by {row.channel}: "
                f"{row.last_error or row.status}",
                "value": int(row.message_id),
            }
            for row in failed.itertuples()
        ]

    @app.callback(
        Output(f"{ID}-retried", "children"),
        Input(f"{ID}-retry", "n_clicks"),
        State(f"{ID}-failed", "value"),
        State("study", "value"),
        prevent_initial_call=True,
    )
    @requires("manage_participants")
    def retry(n_clicks, chosen, study_id):
        if not chosen:
            return notice("Tick the messages to retry first.")
        session = db()
        outcome = retry_failed(
            session,
            [int(value) for value in chosen],
            now=services().clock.now(),
            actor=current_actor(),
            study_id=int(study_id),
        )
        session.commit()
        lines = [f"#{old} queued again as #{new}" for old, new in outcome.requeued.items()]
        lines += [f"#{old} not retried: {reason}" for old, reason in outcome.refused.items()]
        return html.Ul([html.Li(line) for line in lines], className="retried")

    register_download(app, ID, "messages", _messages, filter_states(ID))
