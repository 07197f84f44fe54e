"""The outcomes, assistant-usage and data-quality pages by role, through crafted callback
POSTs: blinded outcomes for every role until an investigator unblinds (audited, per study),
who may unblind, downloads, and free text that stays text."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlmodel import Session, select

from study.models import AuditEvent, ItemResponse, Occasion, Response
from tests.conftest import csrf_token_from

from .conftest import EMAIL, dashboard_token
from .outcomes_quality_answers import SCRIPT, SHARED_PHONE, answer_on_app

FILTERS = ("arm", "stratum", "wave", "from", "to")
ROLES = ("admin", "investigator", "coordinator", "analyst")
KEYS = ("instruct", "reflective", "control")


@pytest.fixture
def study(app, small_study):
    return answer_on_app(app, small_study)


@pytest.fixture
def as_role(client, login, make_researcher, study):
    """Sign in with a role; returns the dashboard's CSRF token."""

    def sign_in(role):
        login(make_researcher(role))
        return dashboard_token(client)

    return sign_in


def sign_out(client):
    token = csrf_token_from(client.get("/studies/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code in (302, 303)


def filters(page, **values):
    return [(f"{page}-{name}", "value", values.get(name)) for name in FILTERS]


def events(app, action):
    with Session(app.extensions["flourish"].engine) as session:
        return session.exec(select(AuditEvent).where(AuditEvent.action == action)).all()


def outcomes_call(dash_post, study, token, outcome="who5_percentage"):
    return dash_post(
        [("outcomes-chart", "figure"), ("outcomes-trajectories", "children")],
        [
            *filters("outcomes"),
            ("outcomes-outcome", "value", outcome),
            ("outcomes-unblinded", "children", None),
        ],
        [("study", "value", study.study_id)],
        token=token,
    )


def unblind_call(dash_post, study, token, reason="database locked"):
    return dash_post(
        [
            ("outcomes-unblinded", "children"),
            ("outcomes-blinded", "hidden"),
            ("outcomes-arm", "options"),
            ("outcomes-arm", "value"),
        ],
        [("outcomes-unblind", "n_clicks", 1)],
        [("outcomes-reason", "value", reason), ("study", "value", study.study_id)],
        token=token,
    )


def names_arms(text):
    return any(key in text for key in KEYS)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", ["outcomes", "usage", "quality"])
def test_every_role_opens_the_pages(as_role, dash_post, study, role, path):
    response = dash_post(
        [("page", "children")],
        [("url", "pathname", f"/dashboard/{path}"), ("study", "value", study.study_id)],
        token=as_role(role),
    )
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "Your role cannot" not in text
    # Only those holding `unblind` get the button; outcomes page filters name no arm for anyone.
    if path == "outcomes":
        assert ('"outcomes-unblind"' in text) is (role in ("admin", "investigator"))
        assert not names_arms(text)


@pytest.mark.parametrize("role", ROLES)
def test_outcomes_are_blinded_for_every_role_before_unblinding(as_role, dash_post, study, role):
    response = outcomes_call(dash_post, study, as_role(role))
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert not names_arms(text)
    assert "Arm A" in text or "Arm B" in text


@pytest.mark.parametrize("role", ["analyst", "coordinator"])
def test_only_roles_holding_unblind_may_unblind(app, as_role, dash_post, study, role):
    token = as_role(role)
    response = unblind_call(dash_post, study, token)
    assert response.status_code == 403
    assert events(app, "study.unblinded") == []
    assert not names_arms(outcomes_call(dash_post, study, token).get_data(as_text=True))


def test_an_investigator_unblinds_the_study_for_everyone_and_it_is_audited(
    app, client, as_role, dash_post, study
):
    token = as_role("investigator")
    response = unblind_call(dash_post, study, token, reason="  primary analysis done  ")
    assert response.status_code == 200
    body = response.get_json()["response"]
    assert "Unblinded on" in json.dumps(body["outcomes-unblinded"])
    assert sorted(body["outcomes-arm"]["options"]) == sorted(KEYS)
    assert body["outcomes-blinded"]["hidden"] is True  # the reason and button go away
    [event] = events(app, "study.unblinded")
    assert event.actor.startswith("researcher:investigator-")
    assert (event.entity_id, event.details) == (
        str(study.study_id),
        {"reason": "primary analysis done"},
    )
    assert "reflective" in outcomes_call(dash_post, study, token).get_data(as_text=True)
    # Per study: an analyst signed in afterwards sees the arms by key, here and on other pages.
    sign_out(client)
    analyst = as_role("analyst")
    assert "reflective" in outcomes_call(dash_post, study, analyst).get_data(as_text=True)
    # A second unblinding is refused and leaves the one record.
    sign_out(client)
    again = unblind_call(dash_post, study, as_role("admin"), reason="again")
    assert "already unblinded" in again.get_data(as_text=True)
    assert len(events(app, "study.unblinded")) == 1


def test_unblinding_needs_a_reason(app, as_role, dash_post, study):
    response = unblind_call(dash_post, study, as_role("investigator"), reason="  ")
    assert response.status_code == 200
    assert "give a reason" in response.get_data(as_text=True)
    assert events(app, "study.unblinded") == []


def download(dash_post, study, token, page, name, extra=()):
    return dash_post(
        [(f"{page}-{name}-download", "data")],
        [(f"{page}-{name}-csv", "n_clicks", 1)],
        [("study", "value", study.study_id), *filters(page), *extra],
        token=token,
    )


def test_the_outcome_download_is_blinded_for_an_investigator_until_unblinding(
    app, as_role, dash_post, study
):
    token = as_role("investigator")
    extra = [("outcomes-outcome", "value", "who5_percentage")]
    response = download(dash_post, study, token, "outcomes", "trajectories", extra)
    assert response.status_code == 200
    data = response.get_json()["response"]["outcomes-trajectories-download"]["data"]
    rows = list(csv.DictReader(io.StringIO(data["content"])))
    assert len(rows) == 3 and not names_arms(data["content"])
    assert sorted(row["n"] for row in rows) == ["1", "2", "2"]
    [event] = events(app, "dashboard.exported")
    assert (event.details["page"], event.details["rows"]) == ("outcomes", 3)
    unblind_call(dash_post, study, token)
    after = download(dash_post, study, token, "outcomes", "trajectories", extra)
    assert (
        "reflective"
        in after.get_json()["response"]["outcomes-trajectories-download"]["data"]["content"]
    )


EXTRA_STATES = {
    ("outcomes", "trajectories"): [("outcomes-outcome", "value", "who5_percentage")],
    ("usage", "alerts"): [("usage-hours", "value", 3), ("usage-night", "value", 0.5)],
}
QUALITY = ("straight", "speeding", "window", "duplicates", "text")
TABLES = [
    ("outcomes", "trajectories"),
    *[("usage", name) for name in ("by-arm", "alerts", "weekly")],
    *[("quality", name) for name in QUALITY],
]


@pytest.mark.parametrize(("page", "name"), TABLES)
def test_every_table_downloads_for_analysts_but_not_coordinators(
    app, client, as_role, dash_post, study, page, name
):
    extra = EXTRA_STATES.get((page, name), [])
    refused = download(dash_post, study, as_role("coordinator"), page, name, extra)
    assert refused.status_code == 403
    assert events(app, "dashboard.exported") == []
    sign_out(client)
    response = download(dash_post, study, as_role("analyst"), page, name, extra)
    assert response.status_code == 200
    data = response.get_json()["response"][f"{page}-{name}-download"]["data"]
    assert data["filename"] == f"{page}-{name}.csv"
    assert not names_arms(data["content"])
    [event] = events(app, "dashboard.exported")
    assert (event.details["page"], event.details["table"]) == (page, name)


def test_usage_page_for_an_analyst_is_blinded_and_lists_codes(as_role, dash_post, study):
    response = dash_post(
        [
            ("usage-chart", "figure"),
            ("usage-by-arm", "children"),
            ("usage-alerts", "children"),
            ("usage-weekly", "children"),
        ],
        [*filters("usage"), ("usage-hours", "value", 0), ("usage-night", "value", 0.5)],
        [("study", "value", study.study_id)],
        token=as_role("analyst"),
    )
    assert response.status_code == 200
    body = response.get_json()["response"]
    alerts = json.dumps(body["usage-alerts"])
    assert "P-A001" in alerts and "over 0 h active" in alerts  # 1 active minute in week 1
    assert not names_arms(json.dumps(body))


def quality_call(dash_post, study, token):
    return dash_post(
        [(f"quality-{name}", "children") for name in QUALITY],
        filters("quality"),
        [("study", "value", study.study_id)],
        token=token,
    )


def test_quality_tables_show_codes_and_free_text_as_text(as_role, dash_post, study):
    response = quality_call(dash_post, study, as_role("coordinator"))
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    body = response.get_json()["response"]
    assert "P-A001, P-B002" in json.dumps(body["quality-duplicates"])
    # Contact values never appear, not even for a role holding view_contacts.
    assert EMAIL not in text and "7700" not in text and SHARED_PHONE[1] not in text
    # The script is a plain string child of a table cell: React renders it as text.
    cells = json.dumps(body["quality-text"])
    assert json.dumps(SCRIPT) in cells
    assert "dangerouslySetInnerHTML" not in text and "Markdown" not in text


def test_an_anonymous_unblind_post_is_refused(app, client, dash_post, study):
    response = unblind_call(dash_post, study, None)
    assert response.status_code == 401
    assert events(app, "study.unblinded") == []


def test_an_answer_that_cannot_be_scored_is_reported_not_a_crash(app, as_role, dash_post, study):
    with Session(app.extensions["flourish"].engine) as session:
        occasion = session.exec(
            select(Occasion).where(
                Occasion.participant_id == study.ids["P-A001"], Occasion.wave == 2
            )
        ).one()
        response = Response(
            occasion_id=occasion.id,
            participant_id=study.ids["P-A001"],
            instrument_id="who5",
            instrument_version="1",
            channel="web",
            status="complete",
        )
        session.add(response)
        session.flush()
        for number in range(1, 6):
            session.add(ItemResponse(response_id=response.id, item_id=f"who5_{number}", value=9))
        session.commit()
    result = outcomes_call(dash_post, study, as_role("analyst"))
    assert result.status_code == 200
    assert "cannot be scored" in result.get_data(as_text=True)
