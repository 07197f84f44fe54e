"""Signing in and out of the researcher pages, and what a signed-in role may see."""

from __future__ import annotations

import re

import pytest
from flask import Blueprint, jsonify
from sqlmodel import Session, col, select

from study import accounts
from study.models import AuditEvent
from study.web.auth import current_actor, login_required, permission_required, safe_next
from tests.conftest import TEST_PASSWORD, csrf_token_from

GENERIC_ERROR = "Email or password is incorrect"


@pytest.fixture
def app(app):
    """The real app plus two probe routes, so permissions and the JSON 401 can be observed."""
    probe = Blueprint("probe", __name__)

    @probe.get("/probe/contacts")
    @permission_required("view_contacts")
    def contacts():
        return "contact details"

    @probe.get("/api/probe")
    @login_required
    def api_probe():
        return jsonify(actor=current_actor())

    @probe.get("/probe/actor")
    def actor():
        return current_actor()

    app.register_blueprint(probe)
    return app


def engine_of(app):
    return app.extensions["flourish"].engine


def audit_actions(app) -> list[str]:
    with Session(engine_of(app)) as session:
        return list(session.exec(select(AuditEvent.action).order_by(col(AuditEvent.id))))


def post_login(client, email, password, next_param=None):
    url = "/login" + (f"?next={next_param}" if next_param else "")
    token = csrf_token_from(client.get(url).get_data(as_text=True))
    return client.post(url, data={"email": email, "password": password, "csrf_token": token})


def session_cookie(client) -> str | None:
    cookie = client.get_cookie("session")
    return cookie.value if cookie else None


# --- the login page -----------------------------------------------------------------------------


def test_login_page_renders_an_accessible_form_with_a_csrf_token(client):
    response = client.get("/login")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert csrf_token_from(html)
    assert re.search(r'<label for="email">Email</label>', html)
    assert re.search(r'<label for="password">Password</label>', html)
    assert 'autocomplete="username"' in html
    assert 'autocomplete="current-password"' in html
    assert 'type="email"' in html
    assert 'type="password"' in html


def test_login_without_csrf_token_is_refused(client, make_researcher):
    researcher = make_researcher("coordinator")
    response = client.post("/login", data={"email": researcher.email, "password": TEST_PASSWORD})
    assert response.status_code == 400
    assert client.get("/studies/").status_code == 302


def test_correct_credentials_sign_in_and_redirect_to_the_studies(app, client, make_researcher):
    researcher = make_researcher("coordinator")
    response = post_login(client, researcher.email.upper(), TEST_PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"] == "/studies/"
    with client.session_transaction() as flask_session:
        assert flask_session["_user_id"].startswith(f"{researcher.id}:")
        assert flask_session.permanent
    page = client.get("/studies/")
    assert page.status_code == 200
    assert researcher.email in page.get_data(as_text=True)
    assert audit_actions(app)[-1] == "login.succeeded"


def test_the_session_cookie_expires_rather_than_living_forever(client, make_researcher):
    post_login(client, make_researcher("analyst").email, TEST_PASSWORD)
    cookie = client.get_cookie("session")
    assert cookie.expires is not None
    assert cookie.http_only


@pytest.mark.parametrize("case", ["wrong password", "unknown email", "inactive account"])
def test_every_failure_shows_the_same_generic_error_and_is_audited(
    app, client, make_researcher, case
):
    make_researcher("admin")
    researcher = make_researcher("coordinator")
    email, password = researcher.email, TEST_PASSWORD
    if case == "wrong password":
        password = "not the right password"
    elif case == "unknown email":
        email = "nobody@example.org"
    else:
        with Session(engine_of(app)) as session:
            accounts.deactivate(session, session.merge(researcher), actor="test")
            session.commit()
    response = post_login(client, email, password)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert GENERIC_ERROR in html
    assert 'role="alert"' in html
    assert 'aria-describedby="login-error"' in html
    assert audit_actions(app)[-1] in ("login.failed", "login.refused")
    with client.session_transaction() as flask_session:
        assert "_user_id" not in flask_session


def test_a_locked_out_account_gets_the_same_generic_error(client, make_researcher):
    researcher = make_researcher("coordinator")
    for _ in range(accounts.LOCKOUT_THRESHOLD):
        post_login(client, researcher.email, "a wrong guess!!")
    response = post_login(client, researcher.email, TEST_PASSWORD)
    assert GENERIC_ERROR in response.get_data(as_text=True)
    assert client.get("/studies/").status_code == 302


def test_empty_fields_are_named_next_to_the_field(client):
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    html = client.post("/login", data={"email": "", "password": "", "csrf_token": token}).get_data(
        as_text=True
    )
    assert 'id="email-error"' in html
    assert 'aria-describedby="email-error"' in html
    assert "Enter your email address." in html
    assert "Enter your password." in html


def test_signing_in_replaces_the_session_against_fixation(client, make_researcher):
    researcher = make_researcher("investigator")
    client.get("/login")
    with client.session_transaction() as flask_session:
        flask_session["planted_by_attacker"] = "x"
    before = session_cookie(client)
    post_login(client, researcher.email, TEST_PASSWORD)
    assert session_cookie(client) != before
    with client.session_transaction() as flask_session:
        assert "planted_by_attacker" not in flask_session


# --- signing out --------------------------------------------------------------------------------


def test_logout_needs_a_post_with_a_csrf_token(app, client, make_researcher, login):
    login(make_researcher("analyst"))
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    page = client.get("/studies/")
    assert page.status_code == 200
    token = csrf_token_from(page.get_data(as_text=True))
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert client.get("/studies/").status_code == 302
    assert audit_actions(app)[-1] == "logout"


# --- protected pages ----------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login_page_and_back(client, make_researcher):
    response = client.get("/studies/?page=2")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/studies/?page%3D2"
    researcher = make_researcher("analyst")
    signed_in = post_login(
        client, researcher.email, TEST_PASSWORD, next_param="/studies/%3Fpage%3D2"
    )
    assert signed_in.headers["Location"] == "/studies/?page=2"


def test_api_and_json_requests_get_401_instead_of_a_redirect(client):
    assert client.get("/api/probe").status_code == 401
    assert client.get("/api/probe").get_json() == {"error": "authentication required"}
    response = client.get("/studies/", headers={"Accept": "application/json"})
    assert response.status_code == 401


def test_browsers_asking_for_anything_still_get_the_redirect(client):
    response = client.get("/studies/", headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.status_code == 302


@pytest.mark.parametrize(
    ("role", "status"),
    [("analyst", 403), ("coordinator", 200), ("investigator", 200), ("admin", 200)],
)
def test_permission_required_refuses_roles_without_the_permission(
    client, make_researcher, login, role, status
):
    login(make_researcher(role))
    assert client.get("/probe/contacts").status_code == status


def test_permission_required_sends_anonymous_visitors_to_login(client):
    response = client.get("/probe/contacts")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_current_actor_names_the_signed_in_researcher(client, make_researcher, login):
    assert client.get("/probe/actor").get_data(as_text=True) == "anonymous"
    researcher = make_researcher("coordinator")
    login(researcher)
    assert client.get("/api/probe").get_json() == {"actor": f"researcher:{researcher.email}"}


def test_home_page_sends_visitors_where_they_belong(client, make_researcher, login):
    assert client.get("/").headers["Location"] == "/login"
    login(make_researcher("analyst"))
    assert client.get("/").headers["Location"] == "/studies/"
    assert client.get("/login").headers["Location"] == "/studies/"


# --- open redirects -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/studies/\r\nSet-Cookie:x=1",
        "studies/",
        "",
        None,
    ],
)
def test_safe_next_refuses_anything_but_a_local_path(target):
    assert safe_next(target) is None


@pytest.mark.parametrize("target", ["/studies/", "/studies/wellbeing?tab=arms", "/"])
def test_safe_next_keeps_local_paths(target):
    assert safe_next(target) == target


def test_login_ignores_an_off_site_next(client, make_researcher):
    researcher = make_researcher("coordinator")
    response = post_login(client, researcher.email, TEST_PASSWORD, next_param="//evil.example/")
    assert response.headers["Location"] == "/studies/"


# --- sessions end when the account changes ------------------------------------------------------


def test_a_deactivated_researcher_is_signed_out_on_the_next_request(
    app, client, make_researcher, login
):
    make_researcher("admin")
    researcher = make_researcher("coordinator")
    login(researcher)
    assert client.get("/studies/").status_code == 200
    with Session(engine_of(app)) as session:
        accounts.deactivate(session, session.merge(researcher), actor="test")
        session.commit()
    response = client.get("/studies/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_changing_the_password_ends_existing_sessions(app, client, make_researcher, login):
    researcher = make_researcher("investigator")
    login(researcher)
    other_browser = app.test_client()
    post_login(other_browser, researcher.email, TEST_PASSWORD)
    assert other_browser.get("/studies/").status_code == 200
    with Session(engine_of(app)) as session:
        accounts.set_password(
            session, session.merge(researcher), "a fresh long passphrase", actor="test"
        )
        session.commit()
    assert client.get("/studies/").status_code == 302
    assert other_browser.get("/studies/").status_code == 302
    post_login(client, researcher.email, "a fresh long passphrase")
    assert client.get("/studies/").status_code == 200


def test_a_forged_session_marker_is_not_accepted(client, make_researcher, login):
    researcher = make_researcher("admin")
    login(researcher)
    with client.session_transaction() as flask_session:
        flask_session["_user_id"] = f"{researcher.id}:{'0' * 32}"
    assert client.get("/studies/").status_code == 302
