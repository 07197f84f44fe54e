"""Pieces every page is built from: who is looking (`View`), the filter bar, tables with an
audited CSV download, and empty-state messages.

Component ids are `<page>-<name>` strings, so ids never collide across pages and tests can
address a callback by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
from dash import Dash, Input, Output, State, dcc, html
from flask_login import current_user

from study import audit, blinding
from study.web.auth import current_actor
from study.web.context import db, services

from .queries import Filters, arm_keys, arm_labels
from .queries.common import parse_day, participants_frame, strata_options
from .security import can, requires

TABLE_ROWS = 200
FILTERS = ("arm", "stratum", "wave", "from", "to")
SEES_ARMS = ("manage_participants", "unblind")


@dataclass(frozen=True)
class View:
    """One request's look at one study: which arms exist and how this researcher sees them.

    Arms are shown by key to those who run the intervention or may unblind (as on the
    participant pages); everyone else sees stable blinded letters ("Arm A"), in tables, charts,
    filter values and CSV files alike. Outcomes compared between arms (`outcomes=True`) are
    blinded for every role. Once the study is unblinded (`study.blinding`, per study, audited)
    everyone sees arms by key.
    """

    study_id: int
    labels: dict[str, str]

    @classmethod
    def of(cls, study_id: int, *, outcomes: bool = False) -> View:
        sees_arms = not outcomes and any(can(permission) for permission in SEES_ARMS)
        blind = not (sees_arms or blinding.is_unblinded(db(), study_id))
        keys = arm_keys(db(), study_id)
        secret = services().settings.secret_key
        return cls(study_id, arm_labels(keys, study_id=study_id, secret=secret, blind=blind))

    def arm_label(self, key: str | None) -> str | None:
        return self.labels.get(key, key) if key is not None else None

    def label_arms(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame` with arm keys replaced by labels, in an `arm` column and in column names."""
        frame = frame.rename(columns={key: label for key, label in self.labels.items()})
        if "arm" in frame.columns:
            frame = frame.assign(arm=frame["arm"].map(lambda key: self.labels.get(key, key)))
        return frame

    def filters(self, arm=None, stratum=None, wave=None, date_from=None, date_to=None) -> Filters:
        """Filters from the filter bar's values (arm labels mapped back to keys)."""
        by_label = {label: key for key, label in self.labels.items()}
        return Filters(
            arms=frozenset(by_label[label] for label in arm or () if label in by_label),
            strata=frozenset(stratum or ()),
            waves=frozenset(int(value) for value in wave or ()),
            date_from=parse_day(date_from),
            date_to=parse_day(date_to),
        )


def filter_bar(page: str, view: View, *, waves: Sequence[int] = (), dates: str = "") -> html.Div:
    """Arm, stratum and (when `waves` are given) wave pickers, and a date range labelled by
    `dates` (what the dates apply to; none when empty)."""
    strata = strata_options(participants_frame(db(), view.study_id))
    controls = [
        _picker(page, "arm", "Arm", sorted(view.labels.values())),
        _picker(page, "stratum", "Stratum", strata),
    ]
    if waves:
        controls.append(_picker(page, "wave", "Wave", [str(w) for w in waves]))
    else:
        controls.append(dcc.Input(id=f"{page}-wave", type="hidden"))
    if dates:
        for name, text in (("from", f"{dates} from"), ("to", "to")):
            controls.append(
                html.Label(
                    [text, dcc.Input(id=f"{page}-{name}", type="date", debounce=True)],
                    className="filter",
                )
            )
    else:
        controls.extend(dcc.Input(id=f"{page}-{name}", type="hidden") for name in ("from", "to"))
    return html.Div(controls, className="filters")


def _picker(page: str, name: str, text: str, options: Sequence[str]) -> html.Label:
    return html.Label(
        [text, dcc.Dropdown(id=f"{page}-{name}", options=list(options), multi=True)],
        className="filter",
    )


def filter_states(page: str) -> list[State]:
    """The filter bar's values, in `View.filters` order, as callback States."""
    return [State(f"{page}-{name}", "value") for name in FILTERS]


def filter_inputs(page: str) -> list[Input]:
    """The same values as callback Inputs: the page redraws when a filter changes."""
    return [Input(f"{page}-{name}", "value") for name in FILTERS]


def on_filters(
    app: Dash,
    page: str,
    outputs: Sequence[tuple[str, str]],
    permission: str,
    *,
    extra: Sequence[Input] = (),
) -> Callable:
    """Register the decorated `draw(view, arm, stratum, wave, date_from, date_to, *extra)` as
    a callback that redraws `outputs` (`(name, property)` under the page's id prefix) whenever
    a filter (or an `extra` input) changes, for researchers holding `permission`."""

    def decorator(draw: Callable) -> Callable:
        @app.callback(
            *[Output(f"{page}-{name}", prop) for name, prop in outputs],
            *filter_inputs(page),
            *extra,
            State("study", "value"),
        )
        @requires(permission)
        def update(*values):
            *rest, study_id = values
            return draw(View.of(int(study_id)), *rest)

        return draw

    return decorator


def table(frame: pd.DataFrame, *, rows: int = TABLE_ROWS) -> html.Div:
    """A plain HTML table of the first `rows` rows (the CSV holds them all)."""
    if frame.empty:
        return html.P("Nothing to show for these filters.", className="empty")
    shown = frame.head(rows)
    header = html.Tr([html.Th(str(column)) for column in shown.columns])
    body = [
        html.Tr([html.Td(_cell(value)) for value in record])
        for record in shown.itertuples(index=False)
    ]
    note = (
        html.P(f"First {rows} of {len(frame)} rows; the CSV has them all.", className="note")
        if len(frame) > rows
        else None
    )
    return html.Div([html.Table([html.Thead(header), html.Tbody(body)]), note], className="table")


def _cell(value) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


def table_section(page: str, name: str, title: str) -> html.Section:
    """A titled slot for a table, filled by a callback (`<page>-<name>`), with its CSV button."""
    download = []
    if can("export_data"):
        download = [
            html.Button("Download CSV", id=f"{page}-{name}-csv", className="download"),
            dcc.Download(id=f"{page}-{name}-download"),
        ]
    return html.Section(
        [html.H3(title), *download, dcc.Loading(html.Div(id=f"{page}-{name}"))],
        className="card",
    )


def register_download(
    app: Dash, page: str, name: str, produce: Callable[..., pd.DataFrame], states: Sequence[State]
) -> None:
    """CSV of table `name`: `produce(view, *state_values)` at the moment of the click, with the
    arms labelled as the researcher sees them; audited as `dashboard.exported`.

    Needs `export_data` (the permission for pseudonymous data leaving the server); the button
    is shown only to those who hold it, and the callback refuses everyone else.
    """

    @app.callback(
        Output(f"{page}-{name}-download", "data"),
        Input(f"{page}-{name}-csv", "n_clicks"),
        State("study", "value"),
        *states,
        prevent_initial_call=True,
    )
    @requires("export_data")
    def download(n_clicks, study_id, *values):
        view = View.of(int(study_id))
        frame = view.label_arms(produce(view, *values))
        session = db()
        audit.record(
            session,
            current_actor(),
            "dashboard.exported",
            entity_type="study",
            entity_id=view.study_id,
            details={
                "page": page,
                "table": name,
                "rows": len(frame),
                "filters": [value for value in values if value not in (None, [], "")],
            },
            at=services().clock.now(),
        )
        session.commit()
        return {
            "content": frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ"),
            "filename": f"{page}-{name}.csv",
            "type": "text/csv",
        }


def notice(text: str) -> html.P:
    return html.P(text, className="notice")


def who() -> str:
    return f"{current_user.email} ({current_user.role})" if current_user.is_authenticated else ""
