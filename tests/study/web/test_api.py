"""The ingest API: bearer keys scoped to one study, schema errors per event, idempotent batches,
413 past the size limit, content encrypted at rest; and the OpenAPI document that describes it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from study.assistant import apikeys
from study.assistant.log import decrypt_content
from study.models import ApiKey, Interaction
from study.pii import PiiVault
from study.web import api, create_app
from tests.study.assistant.trial import ENROLLED_AT, make_trial

URL = "/api/v1/interactions"
CHAT = "Marmaduke the tortoise ate my phone; ring 07700 900461 or mail juniper@example.org"


@pytest.fixture
def app(settings, engine, clock):
    """The app on the parametrised database (SQLite and PostgreSQL), with CSRF on."""
    clock.set(ENROLLED_AT + timedelta(days=3))
    app = create_app(settings, engine=engine, clock=clock)
    app.config["WTF_CSRF_ENABLED"] = True
    return app


@pytest.fixture
def db(engine):
    with Session(engine, expire_on_commit=False) as session:
        yield session


@pytest.fixture
def trial(db, settings):
    trial = make_trial(db, PiiVault(settings.pii_key))
    trial.participant("P-ADA", store_content=True)
    trial.participant("P-BOB", store_content=False)
    trial.participant("P-WD", status="withdrawn")
    return trial


@pytest.fixture
def key(db, trial, clock):
    _, secret = apikeys.create_api_key(
        db,
        study_id=trial.study.id,
        name="lab assistant",
        scopes=["interactions:write"],
        actor="test",
        now=clock.now(),
    )
    db.commit()
    return secret


def event(n=1, **overrides):
    base = {
        "event_id": f"evt-{n}",
        "participant": "P-ADA",
        "session_id": "s-1",
        "role": "user",
        "occurred_at": f"2026-03-03T10:{n % 60:02d}:00+01:00",
        "content": "Hello",
        "prompt_tokens": 5,
        "model": "llama-3.1-8b",
        "prompt_version": "v1",
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not ...}


def post(client, key, body, **headers):
    auth = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post(URL, json=body, headers={**auth, **headers})


def stored(db):
    db.expire_all()
    return db.exec(select(Interaction).order_by(Interaction.id)).all()


def test_a_batch_is_recorded_and_each_event_reported(client, key, db, trial):
    response = post(client, key, {"events": [event(1), event(2, role="assistant", latency_ms=900)]})
    assert response.status_code == 200, response.json
    assert response.json == {
        "accepted": 2,
        "duplicate": 0,
        "rejected": 0,
        "results": [
            {"index": 0, "event_id": "evt-1", "status": "accepted"},
            {"index": 1, "event_id": "evt-2", "status": "accepted"},
        ],
    }
    first, second = stored(db)
    assert first.source == "ingest"
    assert first.arm_id == trial.arms["reflective"].id
    assert first.occurred_at.isoformat() == "2026-03-03T09:01:00+00:00"
    assert (second.role, second.latency_ms, second.model) == ("assistant", 900, "llama-3.1-8b")


def test_resending_a_batch_stores_nothing_twice(client, key, db, trial):
    body = {"events": [event(1), event(2)]}
    assert post(client, key, body).json["accepted"] == 2
    again = post(client, key, body)
    assert again.status_code == 200
    assert (again.json["accepted"], again.json["duplicate"]) == (0, 2)
    assert [r["status"] for r in again.json["results"]] == ["duplicate", "duplicate"]
    assert len(stored(db)) == 2


def test_an_event_id_resent_with_other_data_is_rejected_not_overwritten(client, key, db, trial):
    post(client, key, {"events": [event(1)]})
    response = post(client, key, {"events": [event(1, session_id="s-2"), event(3)]})
    assert response.status_code == 200
    rejected, accepted = response.json["results"]
    assert rejected["status"] == "rejected"
    assert "different session_id" in rejected["reason"]
    assert accepted["status"] == "accepted"
    assert [row.session_id for row in stored(db)] == ["s-1", "s-1"]


def test_schema_errors_are_listed_per_event_and_nothing_is_stored(client, key, db, trial):
    body = {
        "events": [
            event(1),
            event(2, role="moderator", occurred_at="2026-03-03T10:00:00"),
            event(3, prompt_tokens=-1, latency_ms="12", participant=...),
            event(4, surprise=True),
        ]
    }
    response = post(client, key, body)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "invalid_events"
    errors = {(e["index"], e["field"]) for e in response.json["errors"]}
    assert errors == {
        (1, "role"),
        (1, "occurred_at"),
        (2, "participant"),
        (2, "prompt_tokens"),
        (2, "latency_ms"),
        (3, "surprise"),
    }
    messages = {(e["index"], e["field"]): e["message"] for e in response.json["errors"]}
    assert "RFC 3339" in messages[(1, "occurred_at")]
    assert stored(db) == []


@pytest.mark.parametrize(
    "occurred_at",
    [
        "1772528400",
        "2026-03-03",
        "2026-03-03 10:00:00Z",
        "03/03/2026 10:00 +01:00",
        "yesterday",
        "2026-02-30T10:00:00Z",
        "2026-03-03T10:00:00+25:00",
    ],
)
def test_occurred_at_must_be_rfc3339_with_an_offset(client, key, trial, occurred_at):
    response = post(client, key, {"events": [event(1, occurred_at=occurred_at)]})
    assert response.status_code == 422
    assert [(e["index"], e["field"]) for e in response.json["errors"]] == [(0, "occurred_at")]


@pytest.mark.parametrize(
    ("occurred_at", "utc"),
    [
        ("2026-03-03T09:00:00Z", "2026-03-03T09:00:00+00:00"),
        ("2026-03-03t10:00:00+01:00", "2026-03-03T09:00:00+00:00"),
        ("2026-03-03T04:00:00.5-05:00", "2026-03-03T09:00:00.500000+00:00"),
        ("2026-03-03T09:00:00.123456789z", "2026-03-03T09:00:00.123456+00:00"),
    ],
)
def test_occurred_at_in_any_rfc3339_form_is_stored_in_utc(client, key, db, trial, occurred_at, utc):
    assert post(client, key, {"events": [event(1, occurred_at=occurred_at)]}).status_code == 200
    assert stored(db)[0].occurred_at.isoformat() == utc


def test_numbers_given_as_json_numbers_only(client, key, trial):
    response = post(client, key, {"events": [event(1, occurred_at=1772528400)]})
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "events"),
        ({"events": []}, "events"),
        ({"events": "evt-1"}, "events"),
        ([event(1)], "events"),
        ({"events": [event(1)], "extra": 1}, "extra"),
    ],
    ids=["missing", "empty", "not-a-list", "bare-list", "unknown-key"],
)
def test_body_shape_errors_have_no_event_index(client, key, trial, body, field):
    response = post(client, key, body)
    assert response.status_code == 422
    assert response.json["errors"][0]["index"] is None
    assert response.json["errors"][0]["field"].startswith("events" if field == "events" else "")


def test_too_many_events_in_one_batch(client, key, trial):
    body = {"events": [event(n) for n in range(api.MAX_EVENTS + 1)]}
    response = post(client, key, body)
    assert response.status_code == 422
    assert response.json["errors"][0]["field"] == "events"
    assert str(api.MAX_EVENTS) in response.json["errors"][0]["message"]


def test_an_oversized_body_gets_413_as_json(client, key, db, trial):
    body = {"events": [event(1, content="x" * (api.MAX_BODY_BYTES + 10))]}
    response = post(client, key, body)
    assert response.status_code == 413
    assert response.is_json
    assert response.json["error"]["code"] == "request_entity_too_large"
    assert str(api.MAX_BODY_BYTES) in response.json["error"]["message"]
    assert stored(db) == []


def test_malformed_json_and_other_media_types_are_refused(client, key, trial):
    auth = {"Authorization": f"Bearer {key}"}
    broken = client.post(URL, data="{not json", headers=auth, content_type="application/json")
    assert (broken.status_code, broken.json["error"]["code"]) == (400, "malformed_json")
    form = client.post(URL, data={"events": "x"}, headers=auth)
    assert (form.status_code, form.json["error"]["code"]) == (415, "unsupported_media_type")


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer flk_000000000000_" + "A" * 43],
    ids=["absent", "empty", "no-key", "basic", "unknown-key"],
)
def test_requests_without_a_valid_key_get_401(client, trial, db, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.post(URL, json={"events": [event(1)]}, headers=headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert stored(db) == []


def test_a_revoked_key_gets_401(client, key, db, trial, clock):
    row = db.exec(select(ApiKey)).one()
    apikeys.revoke_api_key(db, row, actor="test", now=clock.now())
    db.commit()
    assert post(client, key, {"events": [event(1)]}).status_code == 401


def test_a_key_without_the_write_scope_gets_403(client, db, trial, clock, monkeypatch):
    monkeypatch.setitem(apikeys.SCOPES, "interactions:read", "read turns")
    _, reader = apikeys.create_api_key(
        db,
        study_id=trial.study.id,
        name="reader",
        scopes=["interactions:read"],
        actor="test",
        now=clock.now(),
    )
    db.commit()
    response = post(client, reader, {"events": [event(1)]})
    assert response.status_code == 403
    assert "interactions:write" in response.json["error"]["message"]


def test_a_key_reaches_only_its_own_studys_participants(client, key, db, trial, settings):
    other = make_trial(db, PiiVault(settings.pii_key), slug="other")
    other.participant("P-ZOE")
    response = post(client, key, {"events": [event(1, participant="P-ZOE"), event(2)]})
    assert [(r["status"], r.get("reason")) for r in response.json["results"]] == [
        ("rejected", "unknown participant 'P-ZOE'"),
        ("accepted", None),
    ]
    assert [row.study_id for row in stored(db)] == [trial.study.id]


def test_withdrawn_and_unknown_participants_and_future_events_are_rejected(client, key, trial):
    body = {
        "events": [
            event(1, participant="P-WD"),
            event(2, participant="P-NOBODY"),
            event(3, occurred_at="2026-03-05T09:06:00Z"),  # the clock says 2026-03-05 09:00
            event(4, occurred_at="2026-03-01T09:00:00Z"),  # before enrollment
        ]
    }
    reasons = [r["reason"] for r in post(client, key, body).json["results"]]
    assert "withdrawn" in reasons[0]
    assert "unknown participant" in reasons[1]
    assert "future" in reasons[2]
    assert "before participant P-ADA enrolled" in reasons[3]


def test_no_csrf_token_is_needed_for_bearer_requests(client, key, trial):
    # The app has CSRF protection on; a form POST elsewhere would get 400 without a token.
    assert post(client, key, {"events": [event(1)]}).status_code == 200


def test_content_is_redacted_encrypted_and_kept_only_with_consent(client, key, db, settings, trial):
    body = {"events": [event(1, content=CHAT), event(2, participant="P-BOB", content=CHAT)]}
    assert post(client, key, body).json["accepted"] == 2
    ada, bob = stored(db)
    assert decrypt_content(ada, PiiVault(settings.pii_key)) == (
        "Marmaduke the tortoise ate my phone; ring [phone] or mail [email]"
    )
    assert bob.content_encrypted is None
    assert bob.prompt_tokens == 5


def test_chat_text_is_not_in_the_database_file(settings, sqlite_engine, clock):
    """SQLite only: the raw bytes of the database file (and its WAL) are searched."""
    clock.set(ENROLLED_AT + timedelta(days=3))
    client = create_app(settings, engine=sqlite_engine, clock=clock).test_client()
    with Session(sqlite_engine) as session:
        trial = make_trial(session, PiiVault(settings.pii_key))
        trial.participant("P-ADA", store_content=True)
        _, key = apikeys.create_api_key(
            session,
            study_id=trial.study.id,
            name="lab",
            scopes=["interactions:write"],
            actor="test",
            now=clock.now(),
        )
        session.commit()
    assert post(client, key, {"events": [event(1, content=CHAT)]}).json["accepted"] == 1
    with Session(sqlite_engine) as session:
        assert session.exec(select(Interaction)).one().content_encrypted is not None
    path = Path(sqlite_engine.url.database)
    raw = b"".join(part.read_bytes() for part in path.parent.glob(path.name + "*"))
    assert b"tortoise" not in raw
    assert b"07700" not in raw
    assert b"juniper" not in raw
    assert b"Hello" not in raw and b"Marmaduke" not in raw


def test_the_key_records_its_last_use(client, key, db, trial, clock):
    post(client, key, {"events": [event(1)]})
    db.expire_all()
    assert db.exec(select(ApiKey)).one().last_used_at == clock.now()


def test_a_large_batch_is_stored_in_one_request(client, key, db, trial):
    body = {"events": [event(n, session_id=f"s-{n // 10}") for n in range(api.MAX_EVENTS)]}
    response = post(client, key, body)
    assert response.json["accepted"] == api.MAX_EVENTS
    assert db.exec(select(func.count()).select_from(Interaction)).one() == api.MAX_EVENTS


# --- the OpenAPI document ------------------------------------------------------------------


@pytest.fixture
def document(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json


def test_the_openapi_document_is_openapi_3_1_without_authentication(document):
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] and document["info"]["version"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "http", "scheme": "bearer"}


def test_every_documented_operation_exists_in_the_app_and_vice_versa(app, document):
    served = {
        (rule.rule, method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == served


def test_every_reference_in_the_document_resolves(document):
    def refs(node):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = list(refs(document))
    assert "#/components/schemas/InteractionEvent" in found
    for ref in found:
        target = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert isinstance(target, dict) and target, ref


def test_the_documented_event_schema_matches_what_the_api_enforces(document):
    schemas = document["components"]["schemas"]
    event_schema = schemas["InteractionEvent"]
    assert set(event_schema["required"]) == {
        "event_id",
        "participant",
        "session_id",
        "role",
        "occurred_at",
    }
    assert event_schema["additionalProperties"] is False
    assert event_schema["properties"]["role"]["enum"] == ["user", "assistant", "system", "tool"]
    assert event_schema["properties"]["occurred_at"]["format"] == "date-time"
    events = schemas["InteractionBatch"]["properties"]["events"]
    assert events["maxItems"] == api.MAX_EVENTS
    responses = document["paths"]["/api/v1/interactions"]["post"]["responses"]
    assert set(responses) == {"200", "400", "401", "403", "413", "415", "422"}


def test_the_document_validates_as_openapi_3_1(document):
    from openapi_spec_validator import validate

    validate(document)  # raises with the offending path when the document is not OpenAPI 3.1
    for item in document["paths"].values():
        for operation in item.values():
            assert operation["operationId"] and operation["responses"]
            for response in operation["responses"].values():
                assert response["description"]


def test_unknown_paths_and_wrong_methods_under_the_api_answer_in_json(client):
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.is_json
    assert missing.json["error"]["code"] == "not_found"
    wrong = client.get("/api/v1/interactions")
    assert wrong.status_code == 405 and wrong.is_json
    elsewhere = client.get("/no-such-page")
    assert elsewhere.status_code == 404 and not elsewhere.is_json
