"""`POST /api/v1/interactions` with a valid key and any JSON at all: never a server error; a
batch with schema errors is refused whole with 422 and every error listed by event, storing
nothing; in a batch that passes the schema each event is accepted, a duplicate or rejected with a
reason, and every accepted event is stored exactly once. Runs on SQLite and PostgreSQL, whose
text rules differ (PostgreSQL's text cannot hold NUL).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import Session, func, select

from study.assistant import apikeys
from study.assistant.log import ROLES
from study.models import Interaction
from study.pii import PiiVault
from study.web import api, create_app
from tests.fuzz import fuzz_settings
from tests.study.assistant.trial import ENROLLED_AT, make_trial

URL = "/api/v1/interactions"
CODES = ("P-ADA", "P-BOB", "P-WD")  # consented to text, not consented, withdrawn

JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
ANY_JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
TEXT = st.text(max_size=120)  # any unicode, NUL and surrogate-free JSON-encodable included
DATES = st.one_of(
    st.datetimes(
        min_value=ENROLLED_AT.replace(tzinfo=None) - timedelta(days=400),
        max_value=ENROLLED_AT.replace(tzinfo=None) + timedelta(days=30),
    ).map(lambda moment: moment.isoformat() + "Z"),
    st.sampled_from(
        [
            "2026-03-02T09:00:00Z",
            "2026-03-02T09:00:00.123456789+05:30",
            "2026-02-30T09:00:00Z",
            "2026-03-02T25:00:00Z",
            "2026-03-02T09:00:00+24:00",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59-23:59",
            "2026-03-02 09:00:00",
            "1772442000",
        ]
    ),
    st.integers(),
    TEXT,
)
COUNTS = st.one_of(
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    st.booleans(),
    st.text(max_size=5),
)
NEAR_LIMIT = st.integers(31_990, 32_010).map(lambda n: "é" * n)  # about MAX_CONTENT_CHARS
EVENT_IDS = st.one_of(st.sampled_from(["evt-1", "evt-2", "evt-3"]), TEXT)  # repeats on purpose
EVENTS = st.fixed_dictionaries(
    {
        "event_id": EVENT_IDS,
        "participant": st.one_of(st.sampled_from([*CODES, "P-ZOE"]), TEXT),
        "session_id": st.one_of(st.sampled_from(["s-1", "s-2"]), TEXT),
        "role": st.one_of(st.sampled_from(ROLES), TEXT),
        "occurred_at": DATES,
    },
    optional={
        "content": st.one_of(st.none(), TEXT, NEAR_LIMIT),
        "latency_ms": COUNTS,
        "prompt_tokens": COUNTS,
        "completion_tokens": COUNTS,
        "model": TEXT,
        "prompt_version": TEXT,
        "extra": ANY_JSON,
    },
)
BODIES = st.one_of(
    st.fixed_dictionaries({"events": st.lists(EVENTS, min_size=1, max_size=8)}),
    st.fixed_dictionaries({"events": st.lists(EVENTS, max_size=3)}, optional={"x": ANY_JSON}),
    ANY_JSON,
)


@pytest.fixture
def trial_app(settings, engine, clock):
    """The app on the parametrised database with a small trial and a write key; returns
    (app, key)."""
    clock.set(ENROLLED_AT + timedelta(days=3))
    app = create_app(settings, engine=engine, clock=clock)
    with Session(engine, expire_on_commit=False) as session:
        trial = make_trial(session, PiiVault(settings.pii_key))
        trial.participant("P-ADA", store_content=True)
        trial.participant("P-BOB", store_content=False)
        trial.participant("P-WD", status="withdrawn")
        _, secret = apikeys.create_api_key(
            session,
            study_id=trial.study.id,
            name="fuzz",
            scopes=[api.INGEST_SCOPE],
            actor="test",
            now=clock.now(),
        )
        session.commit()
    return app, secret


def stored(engine) -> dict[str, int]:
    """Rows per event id."""
    with Session(engine) as session:
        rows = session.exec(
            select(Interaction.event_id, func.count()).group_by(Interaction.event_id)
        ).all()
    return dict(rows)


def post(app, key: str, body) -> object:
    return app.test_client().post(
        URL,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def check(app, engine, key, body):
    """Post `body` and check the contract; returns the response."""
    before = stored(engine)
    response = post(app, key, body)
    after = stored(engine)

    assert response.status_code in (200, 400, 413, 422), (response.status_code, response.json)
    assert response.is_json
    if response.status_code != 200:
        assert after == before, "a refused batch stored something"
        if response.status_code == 422:
            errors = response.json["errors"]
            assert errors and all({"index", "field", "message"} <= set(e) for e in errors)
            events = body.get("events") if isinstance(body, dict) else None
            for error in errors:
                assert error["index"] is None or (
                    isinstance(events, list) and 0 <= error["index"] < len(events)
                )
        return response

    results = response.json["results"]
    assert len(results) == len(body["events"])
    assert [r["index"] for r in results] == list(range(len(results)))
    accepted = [r["event_id"] for r in results if r["status"] == "accepted"]
    assert len(accepted) == len(set(accepted)), "one event id accepted twice in a batch"
    assert response.json["accepted"] == len(accepted)
    for result in results:
        assert result["status"] in ("accepted", "duplicate", "rejected")
        assert (result["status"] == "rejected") == bool(result.get("reason"))
    for event_id in accepted:
        assert before.get(event_id, 0) == 0 and after[event_id] == 1, event_id
    changed = {k for k in after if after[k] != before.get(k, 0)}
    assert changed == set(accepted), "stored rows for events that were not accepted"
    assert all(count == 1 for count in after.values())
    return response


@fuzz_settings(50)
@given(body=BODIES)
def test_any_json_is_answered_without_a_500_and_stored_exactly_once(trial_app, engine, body):
    app, key = trial_app
    check(app, engine, key, body)


@fuzz_settings(15)
@given(events=st.lists(EVENTS, min_size=1, max_size=4), repeat=st.booleans())
def test_resending_a_batch_never_stores_anything_twice(trial_app, engine, events, repeat):
    app, key = trial_app
    first = check(app, engine, key, {"events": events})
    if repeat and first.status_code == 200:
        again = check(app, engine, key, {"events": events})
        assert again.json["accepted"] == 0


def valid_event(n: int, **overrides) -> dict:
    return {
        "event_id": f"batch-{n}",
        "participant": "P-ADA",
        "session_id": "s-1",
        "role": "user",
        "occurred_at": "2026-03-03T10:00:00Z",
        "content": "x" * 1900,
        **overrides,
    }


def test_batches_at_and_just_over_the_size_limits(trial_app, engine):
    app, key = trial_app
    full = [valid_event(n) for n in range(api.MAX_EVENTS)]
    body = json.dumps({"events": full})
    assert len(body) < api.MAX_BODY_BYTES  # the largest batch by count also fits by size
    assert check(app, engine, key, {"events": full}).json["accepted"] == api.MAX_EVENTS
    over = [valid_event(n + 1000) for n in range(api.MAX_EVENTS + 1)]
    response = check(app, engine, key, {"events": over})
    assert response.status_code == 422
    oversized = [valid_event(n + 5000, content="y" * 30_000) for n in range(40)]
    assert check(app, engine, key, {"events": oversized}).status_code == 413


def test_a_nul_character_in_a_text_field_is_a_schema_error_on_every_database(trial_app, engine):
    """Found by this file's fuzzing on PostgreSQL, whose text cannot hold NUL: the lookup or the
    insert failed with a 500. Now the event is refused with 422 naming the field."""
    app, key = trial_app
    for field in ("event_id", "participant", "session_id", "model", "prompt_version"):
        event = valid_event(1, **{field: "P-ADA\x00" if field == "participant" else "a\x00b"})
        response = check(app, engine, key, {"events": [event]})
        assert response.status_code == 422, field
        assert [(e["index"], e["field"]) for e in response.json["errors"]] == [(0, field)]
        assert "NUL" in response.json["errors"][0]["message"]
    response = check(app, engine, key, {"events": [valid_event(2, content="a\x00b")]})
    assert response.json["accepted"] == 1  # content is stored encrypted: NUL is harmless there
