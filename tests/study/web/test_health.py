"""`GET /healthz`: JSON for monitors, no login, 503 only when the server cannot work (or, with
`?strict=1`, when invitations have stopped going out)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from study.db import make_engine
from study.scheduler import tick_once
from study.web import create_app


def beat_now(app, clock):
    tick_once(app.extensions["flourish"].engine, clock, [])


def test_a_healthy_server_answers_200_ok_without_login(app, client, clock):
    beat_now(app, clock)

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.is_json
    assert response.json["status"] == "ok"
    assert response.json["scheduler"]["status"] == "ok"
    assert response.json["database"]["status"] == "ok"
    assert response.headers["Cache-Control"] == "no-store"


def test_a_missing_scheduler_is_degraded_but_still_200(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json["status"] == "degraded"
    assert response.json["scheduler"]["status"] == "missing"


def test_a_stale_scheduler_uses_the_configured_limit(app, client, clock, settings):
    beat_now(app, clock)
    clock.advance(seconds=settings.scheduler_stale_seconds + 1)

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json["scheduler"]["status"] == "stale"


@pytest.mark.parametrize("flag", ["1", "true", "yes"])
def test_strict_mode_turns_a_degraded_report_into_503(client, flag):
    response = client.get(f"/healthz?strict={flag}")

    assert response.status_code == 503
    assert response.json["status"] == "degraded"


def test_strict_mode_is_200_when_everything_is_ok(app, client, clock):
    beat_now(app, clock)

    assert client.get("/healthz?strict=1").status_code == 200


def test_an_unmigrated_database_answers_503_down(settings, clock, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    try:
        response = create_app(settings, engine=engine, clock=clock).test_client().get("/healthz")
    finally:
        engine.dispose()

    assert response.status_code == 503
    assert response.json["status"] == "down"
    assert response.json["database"]["status"] == "not migrated"


def test_an_unreachable_database_answers_503_down(settings, clock):
    engine = make_engine("postgresql://flourish:secret@127.0.0.1:1/nothing")
    try:
        response = create_app(settings, engine=engine, clock=clock).test_client().get("/healthz")
    finally:
        engine.dispose()

    assert response.status_code == 503
    assert response.json["database"]["status"] == "unreachable"
    assert "secret" not in response.get_data(as_text=True)


def test_the_report_carries_no_host_process_or_personal_details(app, client, clock):
    beat_now(app, clock)
    clock.advance(timedelta(seconds=5))

    body = client.get("/healthz").json

    assert set(body) == {"status", "checked_at", "database", "scheduler"}
    assert "host" not in body["scheduler"]
    assert "pid" not in body["scheduler"]


def test_only_get_is_allowed(client):
    assert client.post("/healthz").status_code == 405
