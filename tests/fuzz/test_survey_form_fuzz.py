"""Survey pages posted with anything at all: never a server error, and nothing stored that is
not a point of the item's scale.

Each example is a fresh occasion (WHO-5 then momentary affect), opened as a browser opens it
(for the CSRF token) and then posted with fields drawn from the real field names, random names,
valid answers, numbers of every kind, odd text and the page number.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import Session, select

from study.models import ItemResponse, Response
from study.protocol import load_protocol
from study.schedule.links import survey_link
from tests.conftest import csrf_token_from
from tests.fuzz import fuzz_settings
from tests.study.test_surveys import add_occasion, enrolled_participant, register_example

EXAMPLE = Path(__file__).parents[2] / "examples/protocols/assistant-flourishing-rct.yaml"
INSTRUMENTS = ("who5", "momentary_affect")


def scale_points() -> dict[tuple[str, str], set[float]]:
    """Every item's allowed answers, from the instrument definitions."""
    protocol = load_protocol(EXAMPLE)
    points = {}
    for instrument_id in INSTRUMENTS:
        instrument = protocol.instrument(instrument_id)
        for item in instrument.items:
            scale = instrument.response_scales[item.scale]
            count = round((scale.max - scale.min) / scale.step) + 1
            points[(instrument_id, item.id)] = {scale.min + k * scale.step for k in range(count)}
    return points


POINTS = scale_points()
FIELDS = [f"{instrument}.{item}" for instrument, item in POINTS]
VALUES = st.one_of(
    st.sampled_from(sorted({str(int(v)) for points in POINTS.values() for v in points})),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " 3", "3 ", "03", "3.0", "3e0", "0x3", "٣", "Ⅲ", "3\x00", "null", "NaN"]),
    st.text(max_size=30),
    st.text(min_size=2000, max_size=4000),
)
FORMS = st.fixed_dictionaries(
    {"page": st.one_of(st.sampled_from(["1", "2", "0", "3", "-1", "", "1.5", "x"]), st.text())},
    optional={
        "extra": st.dictionaries(
            st.one_of(st.sampled_from(FIELDS), st.text(max_size=30)),
            st.lists(VALUES, min_size=1, max_size=2),
            max_size=12,
        )
    },
)


def stored_values(engine, occasion_id: int) -> list[tuple[str, str, float | None, str | None]]:
    with Session(engine) as session:
        return [
            (response.instrument_id, item.item_id, item.value, item.text)
            for response, item in session.exec(
                select(Response, ItemResponse)
                .join(ItemResponse, ItemResponse.response_id == Response.id)
                .where(Response.occasion_id == occasion_id)
            )
        ]


@fuzz_settings(80)
@given(form=FORMS, answer_first_page=st.booleans())
def test_any_posted_survey_form_is_answered_without_a_500_and_stores_only_scale_points(
    app, client, settings, clock, form, answer_first_page
):
    engine = app.extensions["flourish"].engine
    with Session(engine, expire_on_commit=False) as session:
        registration = register_example(session)  # the same version again: unchanged
        participant = enrolled_participant(
            session, registration, clock.now(), code=f"P-FUZZ{uuid.uuid4().hex[:8]}"
        )
        occasion = add_occasion(session, participant, clock.now(), INSTRUMENTS)
    path = survey_link(settings, occasion.id).removeprefix(settings.public_url)
    if answer_first_page:  # so that page 2 exists to be posted at
        token = csrf_token_from(client.get(path).get_data(as_text=True))
        data = {"csrf_token": token, "page": "1"}
        data.update({field: "3" for field in FIELDS if field.startswith("who5.")})
        assert client.post(path, data=data).status_code == 303

    token = csrf_token_from(client.get(path).get_data(as_text=True))
    data = {"csrf_token": token, "page": form["page"]}
    for key, values in form.get("extra", {}).items():
        if key not in ("csrf_token", "page"):
            data[key] = values
    response = client.post(path, data=data)

    assert response.status_code in (200, 303, 400, 422), response.status_code
    for instrument_id, item_id, value, text in stored_values(engine, occasion.id):
        assert text is None
        assert value in POINTS[(instrument_id, item_id)], (instrument_id, item_id, value)
