"""Who gets what from /dashboard/: sign-in on every Dash route, CSRF on callbacks, the nonce
CSP, and each callback's own permission check, exercised with crafted callback POSTs."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlmodel import Session, select

from study.models import AuditEvent, OutboundMessage

from .conftest import EMAIL, dashboard_token

PAGES = ["/dashboard/", "/dashboard/compliance", "/dashboard/participant", "/dashboard/queue"]
MACHINE_GETS = [
    "/dashboard/_dash-layout",
    "/dashboard/_dash-dependencies",
    "/dashboard/_dash-component-suites/dash/dcc/dash_core_components.v4_4_1m1.js",
    "/dashboard/_reload-hash",
    "/dashboard/_favicon.ico",
    "/dashboard/assets/dashboard.css",
]
FILTERS = ("arm", "stratum", "wave", "from", "to")
ROLES = ("admin", "investigator", "coordinator", "analyst")


def filters(page, **values):
    return [(f"{page}-{name}", "value", values.get(name)) for name in FILTERS]


def events(app, action):
    with Session(app.extensions["flourish"].engine) as session:
        return session.exec(select(AuditEvent).where(AuditEvent.action == action)).all()


@pytest.fixture
def signed_in(client, login, make_researcher, small_study):
    """Sign in with a role; returns the dashboard's CSRF token."""

    def sign_in(role):
        login(make_researcher(role))
        return dashboard_token(client)

    return sign_in


# --- anonymous ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", MACHINE_GETS)
def test_anonymous_requests_to_dash_routes_get_401_json(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.get_json() == {"error": "authentication required"}


def test_anonymous_callback_post_gets_401_even_without_a_csrf_token(client, dash_post):
    response = dash_post([("page", "children")], [("url", "pathname", "/dashboard/")])
    assert response.status_code == 401
    assert response.get_json() == {"error": "authentication required"}


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_page_visits_go_to_the_login_page(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/login?next={path}"


# --- CSRF and CSP ---------------------------------------------------------------------------


def test_callback_posts_need_the_csrf_token(signed_in, dash_post, small_study):
    token = signed_in("analyst")
    outputs = [("page", "children")]
    inputs = [
        ("url", "pathname", "/dashboard/compliance"),
        ("study", "value", small_study.study_id),
    ]
    assert dash_post(outputs, inputs, token=None).status_code == 400
    assert dash_post(outputs, inputs, token="forged").status_code == 400
    accepted = dash_post(outputs, inputs, token=token)
    assert accepted.status_code == 200
    assert "compliance-heatmap" in accepted.get_data(as_text=True)


def test_the_csrf_cookie_is_scoped_to_the_dashboards(client, signed_in):
    signed_in("analyst")
    header = client.get("/dashboard/").headers.get("Set-Cookie")
    assert "flourish_dashboard_csrf=" in header
    assert "Path=/dashboard/" in header
    assert "SameSite=Strict" in header


def test_dashboard_pages_allow_only_the_renderer_script_by_nonce(client, signed_in):
    signed_in("coordinator")
    response = client.get("/dashboard/compliance")
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
    html = response.get_data(as_text=True)
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html.split("<![endif]-->")[-1])
    executable = [attrs for attrs in inline if "application/json" not in attrs]
    assert executable == [f' nonce="{nonce}" id="_dash-renderer" type="application/javascript"']
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    # A second response has a fresh nonce; the rest of the site keeps its own policy.
    again = client.get("/dashboard/compliance").headers["Content-Security-Policy"]
    assert nonce not in again
    assert "nonce" not in client.get("/login").headers["Content-Security-Policy"]


# --- pages and callbacks by role ------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", PAGES)
def test_every_role_opens_every_page(signed_in, dash_post, small_study, role, path):
    token = signed_in(role)
    response = dash_post(
        [("page", "children")],
        [("url", "pathname", path), ("study", "value", small_study.study_id)],
        token=token,
    )
    assert response.status_code == 200
    assert "Your role cannot" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("role", "sees_keys"), [("admin", True), ("coordinator", True), ("analyst", False)]
)
def test_arms_are_blinded_for_roles_that_may_not_see_allocation(
    signed_in, dash_post, small_study, role, sees_keys
):
    token = signed_in(role)
    outputs = [
        ("overview-enrollment-chart", "figure"),
        ("overview-enrollment", "children"),
        ("overview-consort", "children"),
    ]
    response = dash_post(
        outputs, filters("overview"), [("study", "value", small_study.study_id)], token=token
    )
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert ("reflective" in text) is sees_keys
    assert ("Arm A" in text) is not sees_keys


def contacts_call(dash_post, small_study, token):
    return dash_post(
        [("timeline-contacts", "children")],
        [("timeline-reveal", "n_clicks", 1)],
        [("timeline-code", "value", "p-a001"), ("study", "value", small_study.study_id)],
        token=token,
    )


@pytest.mark.parametrize("role", ["admin", "investigator", "coordinator"])
def test_contact_details_are_shown_to_coordinators_and_up_and_audited(
    app, signed_in, dash_post, small_study, role
):
    response = contacts_call(dash_post, small_study, signed_in(role))
    assert response.status_code == 200
    assert EMAIL in response.get_data(as_text=True)
    [event] = events(app, "participant.view_contacts")
    assert event.details == {"participants": ["P-A001"]}
    assert event.actor.startswith(f"researcher:{role}-")


def test_analysts_get_nothing_from_the_contact_callback(app, signed_in, dash_post, small_study):
    token = signed_in("analyst")
    response = contacts_call(dash_post, small_study, token)
    assert response.status_code == 403
    assert EMAIL not in response.get_data(as_text=True)
    assert events(app, "participant.view_contacts") == []
    page = dash_post(
        [("page", "children")],
        [("url", "pathname", "/dashboard/participant"), ("study", "value", small_study.study_id)],
        token=token,
    )
    assert "timeline-reveal" not in page.get_data(as_text=True)


def retry_call(dash_post, small_study, token):
    return dash_post(
        [("queue-retried", "children")],
        [("queue-retry", "n_clicks", 1)],
        [
            ("queue-failed", "value", [small_study.messages["C001-2"]]),
            ("study", "value", small_study.study_id),
        ],
        token=token,
    )


def test_a_coordinator_retries_a_failed_send_through_the_domain_function(
    app, signed_in, dash_post, small_study
):
    response = retry_call(dash_post, small_study, signed_in("coordinator"))
    assert response.status_code == 200
    assert "queued again" in response.get_data(as_text=True)
    [event] = events(app, "message.retried")
    assert event.entity_id == str(small_study.messages["C001-2"])
    with Session(app.extensions["flourish"].engine) as session:
        fresh = session.get(OutboundMessage, event.details["new_message_id"])
        assert (fresh.status, fresh.channel) == ("pending", "sms")


def test_analysts_cannot_retry(app, signed_in, dash_post, small_study):
    response = retry_call(dash_post, small_study, signed_in("analyst"))
    assert response.status_code == 403
    assert events(app, "message.retried") == []


def download_call(dash_post, small_study, token):
    return dash_post(
        [("compliance-rates-download", "data")],
        [("compliance-rates-csv", "n_clicks", 1)],
        [("study", "value", small_study.study_id), *filters("compliance", wave=["1"])],
        token=token,
    )


def test_csv_downloads_are_audited_exports_in_the_viewers_blinding(
    app, signed_in, dash_post, small_study
):
    response = download_call(dash_post, small_study, signed_in("analyst"))
    assert response.status_code == 200
    data = response.get_json()["response"]["compliance-rates-download"]["data"]
    assert data["filename"] == "compliance-rates.csv"
    rows = list(csv.DictReader(io.StringIO(data["content"])))
    assert [row["wave"] for row in rows] == ["1", "1", "1"]
    assert {row["arm"] for row in rows} == {"Arm A", "Arm B", "Arm C"}
    [event] = events(app, "dashboard.exported")
    assert event.details["table"] == "rates"
    assert event.details["rows"] == 3


def test_roles_without_export_data_cannot_download(app, signed_in, dash_post, small_study):
    response = download_call(dash_post, small_study, signed_in("coordinator"))
    assert response.status_code == 403
    assert events(app, "dashboard.exported") == []


def test_study_data_is_not_cached_but_library_bundles_are(client, signed_in):
    signed_in("analyst")
    for path in ("/dashboard/", "/dashboard/_dash-layout", "/dashboard/_dash-dependencies"):
        assert client.get(path).headers["Cache-Control"] == "no-store", path
    page = client.get("/dashboard/").get_data(as_text=True)
    bundle = re.search(
        r'src="(/dashboard/_dash-component-suites/[^"]+plotly[^"]*|'
        r'/dashboard/_dash-component-suites/dash/dcc/[^"]+)"',
        page,
    ).group(1)
    cached = client.get(bundle)
    assert cached.status_code == 200
    assert "max-age" in cached.headers.get("Cache-Control", "")
