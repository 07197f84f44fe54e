"""The web app's defences, checked over HTTP: CSRF on every state-changing form (and exactly the
documented exemptions), sessions renewed at sign-in and not carried across participants, survey
and portal links that cannot be guessed or altered, Twilio signatures, stored XSS, security
headers on every HTML page, cookie flags and password hashes. docs/security.md explains each."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from html import escape as html_escape
from pathlib import Path

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from markupsafe import escape
from sqlmodel import Session, func, select
from twilio.request_validator import RequestValidator

from study.assistant import apikeys
from study.models import (
    ItemResponse,
    Occasion,
    Participant,
    Researcher,
)
from study.models import Response as SurveyResponse
from study.schedule.links import survey_token
from study.web import create_app
from tests.conftest import TEST_PASSWORD, csrf_token_from
from tests.security.conftest import CODE, PERSONAS, enrolled_world
from tests.security.test_route_access import ACCESS, ALLOWED, FORMS, concrete
from tests.study.web.test_participate import JOIN, submit, to_signature

XSS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
# An executable inline script: no src, no nonce, not a JSON data block.
INLINE_SCRIPT = re.compile(
    r"<script(?![^>]*\bsrc=)(?![^>]*\bnonce=)(?![^>]*application/json)[^>]*>", re.I
)
COMMENT = re.compile(r"<!--.*?-->", re.S)


def engine_of(app):
    return app.extensions["flourish"].engine


def participant_status(app, code: str = CODE) -> str:
    with Session(engine_of(app)) as session:
        return session.exec(select(Participant.status).where(Participant.code == code)).one()


# --- CSRF ---------------------------------------------------------------------------------------

EXEMPT_BLUEPRINTS = {"twilio_hooks", "api"}  # Twilio signatures; bearer API keys
CSRF_ELSEWHERE = {
    "/twilio/sms",  # exempt: Twilio's signature
    "/twilio/status",
    "/api/v1/interactions",  # exempt: bearer key, no cookies
    # Protected (header token); tests/dashboards/test_access.py posts callbacks without it.
    "/dashboard/_dash-update-component",
}


def test_the_csrf_exemptions_are_exactly_the_twilio_webhooks_and_the_bearer_api(app):
    csrf = app.extensions["csrf"]
    assert {blueprint.name for blueprint in csrf._exempt_blueprints} == EXEMPT_BLUEPRINTS
    assert csrf._exempt_views == set()
    exempt_posts = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if "POST" in rule.methods and rule.endpoint.split(".")[0] in EXEMPT_BLUEPRINTS
    }
    assert exempt_posts == {"/twilio/sms", "/twilio/status", "/api/v1/interactions"}


def test_every_state_changing_form_refuses_a_post_without_a_valid_token(persona, world):
    """Each POST row of the access table, by a persona allowed to use it: no token, then a
    token of another session, both refused with 400 before the view runs."""
    clients: dict[str, object] = {}
    tried, wrong = set(), []
    for (rule, method), row in ACCESS.items():
        if method != "POST" or rule in CSRF_ELSEWHERE:
            continue
        name = PERSONAS[row.index(ALLOWED)] if ALLOWED in row else "admin"  # logout
        client = clients.setdefault(name, persona(name))
        path = concrete(rule, world)
        for token in (None, "IjAwMDAi.forged.token"):
            data = dict(FORMS.get((rule, method), {}))
            headers = {}
            if token:
                data["csrf_token"] = token
                headers["X-CSRFToken"] = token
            response = client.open("POST", path, csrf=False, data=data, headers=headers)
            body = response.get_data(as_text=True)
            if response.status_code != 400 or "CSRF" not in body:
                wrong.append(f"POST {rule} as {name} (token {token!r}): {response.status_code}")
        tried.add(rule)
    assert not wrong, "\n".join(wrong)
    posts = {rule for rule, method in ACCESS if method == "POST"}
    assert tried == posts - CSRF_ELSEWHERE and len(tried) == 22


def test_a_refused_token_changes_nothing(persona, world, app):
    participant = persona("participant")
    assert participant.open("POST", "/p/withdraw", csrf=False).status_code == 400
    coordinator = persona("coordinator")
    path = f"/studies/{world.slug}/participants/{CODE}/withdraw"
    data = {"confirm": "y", "reason": "moved away"}
    assert coordinator.open("POST", path, csrf=False, data=data).status_code == 400
    assert participant_status(app) == "enrolled"
    # ... and the same requests with the token do what they say.
    assert coordinator.open("POST", path, data=data).status_code == 302
    assert participant_status(app) == "withdrawn"


# --- sessions -----------------------------------------------------------------------------------


def test_signing_in_starts_a_new_session(app, client, make_researcher):
    researcher = make_researcher("admin")
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    with client.session_transaction() as browser:
        browser["planted"] = "by an attacker"
        before = dict(browser)
    planted_cookie = client.get_cookie("session").value
    response = client.post(
        "/login", data={"email": researcher.email, "password": TEST_PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302
    with client.session_transaction() as browser:
        assert "planted" not in browser
        assert browser.get("csrf_token") != before["csrf_token"]
        assert browser.get("_user_id", "").startswith(f"{researcher.id}:")
    assert client.get_cookie("session").value != planted_cookie
    # The cookie from before sign-in is still anonymous.
    other = app.test_client()
    other.set_cookie("session", planted_cookie)
    assert other.get("/studies/").status_code == 302


def test_a_cookie_planted_before_joining_gains_nothing_from_the_participant_who_joins(app, world):
    attacker = app.test_client()
    attacker.get(f"{JOIN}/screening")
    with attacker.session_transaction() as browser:
        browser["planted"] = "by an attacker"
    planted = attacker.get_cookie("session").value

    victim = app.test_client()
    victim.set_cookie("session", planted)  # fixed by the attacker, e.g. through a sibling domain
    to_signature(victim)
    assert submit(victim, f"{JOIN}/sign", {"signed_name": "Vic Tim"}).status_code == 302
    with victim.session_transaction() as browser:
        victim_code = browser["participant"]

    # The attacker's copy of the cookie carries no participant: no portal, no chat, no copy.
    attacker.set_cookie("session", planted)
    assert attacker.get("/p/").status_code == 403
    assert attacker.get("/p/chat/").status_code == 404
    assert attacker.get("/p/consent-copy").status_code == 403
    assert victim_code not in attacker.get(f"{JOIN}/signed").get_data(as_text=True)


def test_a_portal_link_replaces_whatever_session_the_browser_had(app, world, clock, settings):
    other = enrolled_world(app, settings, clock, code="P-SEC002")
    browser = app.test_client()
    with browser.session_transaction() as planted:
        planted["participant"] = other.code  # someone else's portal session on a shared device
        planted["planted"] = "x"
    assert browser.get(f"/p/{world.portal_token}").status_code == 302
    with browser.session_transaction() as after:
        assert dict(after) == {"participant": CODE}
    assert CODE in browser.get("/p/").get_data(as_text=True)


def test_a_session_cookie_signed_with_another_key_is_worthless(app, world):
    forger = Flask("forger")
    forger.secret_key = "not-the-secret-key"
    cookie = (
        SecureCookieSessionInterface().get_signing_serializer(forger).dumps({"participant": CODE})
    )
    browser = app.test_client()
    browser.set_cookie("session", cookie)
    assert browser.get("/p/").status_code == 403
    assert browser.get("/p/chat/").status_code == 404


# --- survey and portal links --------------------------------------------------------------------


def stored_answers(app) -> int:
    with Session(engine_of(app)) as session:
        return (
            session.exec(select(func.count()).select_from(ItemResponse)).one()
            + session.exec(select(func.count()).select_from(SurveyResponse)).one()
        )


def occasion_of(app, occasion_id: int) -> Occasion:
    with Session(engine_of(app)) as session:
        return session.get(Occasion, occasion_id)


def answered_first_page(client) -> dict[str, str]:
    """A complete, valid first survey page (WHO-5) with a CSRF token of `client`'s session."""
    csrf = csrf_token_from(client.get("/login").get_data(as_text=True))
    return {"csrf_token": csrf, "page": "1", **{f"who5.who5_{i}": "3" for i in range(1, 6)}}


def tampered(token: str) -> list[str]:
    body, _, signature = token.rpartition(".")
    # The first character: all six of its bits are signature (the last one's low bits are padding).
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    return [
        f"{body}.{flipped}",  # altered signature
        token[:-4],  # truncated
        token + "x",
        body,  # no signature
        token.replace(".", "", 1),
        "A" * len(token),
    ]


def test_altered_forged_and_cross_used_links_find_nothing_and_store_nothing(app, world, settings):
    forged = survey_token(dataclasses.replace(settings, secret_key="k" * 48), world.occasion_id)
    client = app.test_client()
    form = answered_first_page(client)
    for token in [*tampered(world.survey_token), forged, world.portal_token]:
        assert client.get(f"/s/{token}").status_code == 404, token
        assert client.post(f"/s/{token}", data=form).status_code == 404, token
    for token in [*tampered(world.portal_token), world.survey_token]:
        assert client.get(f"/p/{token}").status_code == 404, token
    assert stored_answers(app) == 0
    assert occasion_of(app, world.occasion_id).opened_at is None
    # The same form with the real link is taken: the checks above could fail.
    assert client.post(f"/s/{world.survey_token}", data=form).status_code == 303
    assert stored_answers(app) > 0


def test_a_closed_survey_is_gone_and_takes_nothing(app, world, clock):
    clock.advance(days=3)  # past the 48-hour window
    client = app.test_client()
    assert client.get(f"/s/{world.survey_token}").status_code == 410
    form = answered_first_page(client)
    assert client.post(f"/s/{world.survey_token}", data=form).status_code == 410
    assert stored_answers(app) == 0


def test_a_withdrawn_participants_link_is_gone_and_takes_nothing(app, world):
    with Session(engine_of(app)) as session:
        participant = session.get(Participant, world.participant_id)
        participant.status = "withdrawn"
        session.add(participant)
        session.commit()
    client = app.test_client()
    assert client.get(f"/s/{world.survey_token}").status_code == 410
    form = answered_first_page(client)
    assert client.post(f"/s/{world.survey_token}", data=form).status_code == 410
    assert stored_answers(app) == 0


def test_links_carry_enough_randomness_and_a_full_signature(settings, world):
    tokens = {survey_token(settings, world.occasion_id) for _ in range(50)}
    assert len(tokens) == 50  # a random nonce in every link to the same occasion
    signature = next(iter(tokens)).rpartition(".")[2]
    # The nonce is 9 random bytes (72 bits); the HMAC-SHA1 signature is 20 bytes (160 bits).
    assert math.ceil(160 / 6) <= len(signature)
    assert len(world.portal_token.rpartition(".")[2]) >= math.ceil(160 / 6)


# --- Twilio: what tests/study/web/test_twilio_hooks.py leaves out -------------------------------


def test_a_signature_for_one_webhook_does_not_open_the_other(settings, sqlite_engine, clock):
    configured = dataclasses.replace(settings, twilio_auth_token="t" * 32)
    client = create_app(configured, engine=sqlite_engine, clock=clock).test_client()
    params = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "failed", "ErrorCode": "30003"}
    signature = RequestValidator("t" * 32).compute_signature(
        configured.public_url + "/twilio/sms", params
    )
    response = client.post("/twilio/status", data=params, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403


# --- stored XSS ---------------------------------------------------------------------------------


def assert_escaped(html: str, payload: str) -> None:
    assert payload not in html, f"{payload!r} is in the page unescaped"
    shown = {escape(payload), html_escape(payload)}  # Jinja's &#34; or html.escape's &quot;
    assert any(form in html for form in shown), f"{payload!r} is not shown (escaped) at all"


@pytest.mark.parametrize("payload", XSS)
def test_participant_texts_are_shown_escaped(persona, world, payload):
    participant = persona("participant")
    for kind in ("memory", "goals"):
        response = participant.open("POST", f"/p/chat/{kind}", data={"text": payload})
        assert response.status_code == 303, kind
        assert_escaped(participant.open("GET", f"/p/chat/{kind}").get_data(as_text=True), payload)
    sent = participant.open(
        "POST",
        "/p/chat/messages",
        data={"message": payload},
        headers={"Accept": "application/json"},
    )
    assert sent.status_code == 201
    assert_escaped(participant.open("GET", "/p/chat/").get_data(as_text=True), payload)


@pytest.mark.parametrize("payload", XSS)
def test_a_typed_signature_is_shown_escaped_to_the_participant_and_to_researchers(
    app, persona, world, payload
):
    joiner = app.test_client()
    to_signature(joiner)
    assert submit(joiner, f"{JOIN}/sign", {"signed_name": payload}).status_code == 302
    copy = joiner.get(f"{JOIN}/consent-copy")
    assert copy.mimetype == "text/html"
    assert_escaped(copy.get_data(as_text=True), payload)
    with joiner.session_transaction() as browser:
        code = browser["participant"]
    page = persona("coordinator").open(
        "GET", f"/studies/{world.slug}/participants/{code}?contacts=1"
    )
    assert page.status_code == 200
    assert_escaped(page.get_data(as_text=True), payload)


def test_ingested_content_reaches_researchers_only_as_a_json_download(app, persona, world, clock):
    with Session(engine_of(app)) as session:
        _, secret = apikeys.create_api_key(
            session,
            study_id=1,
            name="lab",
            scopes=["interactions:write"],
            actor="test",
            now=clock.now(),
        )
        session.commit()
    events = [
        {
            "event_id": f"xss-{n}",
            "participant": CODE,
            "session_id": "s-1",
            "role": "assistant",
            "occurred_at": "2026-03-02T08:00:00Z",
            "content": payload,
        }
        for n, payload in enumerate(XSS)
    ]
    ingested = app.test_client().post(
        "/api/v1/interactions",
        json={"events": events},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert ingested.json["accepted"] == 2, ingested.json
    export = persona("admin").open("POST", f"/studies/{world.slug}/participants/{CODE}/export")
    assert export.status_code == 200
    assert export.mimetype == "application/json"
    assert export.headers["Content-Disposition"].startswith("attachment;")
    assert export.headers["X-Content-Type-Options"] == "nosniff"
    assert all(json.dumps(payload)[1:-1] in export.get_data(as_text=True) for payload in XSS)


# --- headers and cookies ------------------------------------------------------------------------


def script_sources(policy: str) -> list[str]:
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    return directives.get("script-src", directives.get("default-src", []))


@pytest.mark.parametrize("name", ["anonymous", "participant", "admin"])
def test_every_html_page_carries_the_security_headers(name, persona, world):
    client, checked = persona(name), 0
    paths = [concrete(rule, world) for rule, method in ACCESS if method == "GET"]
    for path in [*paths, "/no-such-page", f"/s/{'x' * 40}"]:
        response = client.open("GET", path, follow_redirects=True)
        assert response.headers.get("X-Content-Type-Options") == "nosniff", path
        if response.mimetype != "text/html":
            continue
        checked += 1
        policy = response.headers.get("Content-Security-Policy", "")
        sources = script_sources(policy)
        assert sources and "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources, (
            path,
            policy,
        )
        assert "frame-ancestors 'none'" in policy, path
        assert response.headers.get("X-Frame-Options") == "DENY", path
        # Inline scripts only with this response's nonce (the Dash renderer's bootstrap).
        assert not INLINE_SCRIPT.search(COMMENT.sub("", response.get_data(as_text=True))), path
    assert checked >= 10


def set_cookie(response, name: str) -> str:
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{name}=")]
    assert headers, f"no {name} cookie set"
    return headers[-1]


def test_session_and_dashboard_cookies_are_httponly_samesite_and_secure_over_https(
    client, make_researcher
):
    researcher = make_researcher("analyst")
    token = csrf_token_from(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login", data={"email": researcher.email, "password": TEST_PASSWORD, "csrf_token": token}
    )
    cookie = set_cookie(response, "session")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie
    dashboard = set_cookie(client.get("/dashboard/"), "flourish_dashboard_csrf")
    assert "SameSite=Strict" in dashboard and "Secure" in dashboard
    assert "Path=/dashboard/" in dashboard


def test_cookies_are_not_marked_secure_when_the_public_url_is_plain_http(
    settings, sqlite_engine, clock
):
    local = dataclasses.replace(settings, public_url="http://localhost:5000")
    client = create_app(local, engine=sqlite_engine, clock=clock).test_client()
    cookie = set_cookie(client.get("/login"), "session")
    assert "HttpOnly" in cookie and "Secure" not in cookie


# --- secrets at rest ----------------------------------------------------------------------------


def test_passwords_and_api_keys_are_stored_only_as_hashes(app, make_researcher, world, clock):
    researcher = make_researcher("admin")
    with Session(engine_of(app)) as session:
        _, secret = apikeys.create_api_key(
            session, study_id=1, name="k", scopes=["interactions:write"], actor="t", now=clock.now()
        )
        session.commit()
        stored = session.get(Researcher, researcher.id)
        assert stored.password_hash.startswith("$argon2id$")
    engine_of(app).dispose()  # checkpoints the WAL, so the file holds everything
    database = Path(engine_of(app).url.database)
    raw = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    assert TEST_PASSWORD.encode() not in raw
    assert secret.encode() not in raw
    assert b"A. Participant" not in raw  # the signature (and contacts) are encrypted
    assert stored.password_hash.encode() in raw
