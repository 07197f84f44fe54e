"""Scores checked against reference values, never against the code's own output.

Every expected number comes from ../shared/reference/instruments.md, section "(b) Worked examples
and fixtures with known scores", or is worked out by hand from a published scoring rule (the
arithmetic is written next to it). Each check runs on the keys as published, transcribed here,
and on the instrument file the library ships, so a wrong key in a library file fails too.

Scores are found by what they are (the items they aggregate, by position in administration
order, and their method), not by id, so the check does not depend on how a file names them.
"""

from __future__ import annotations

import pytest

from instruments.catalogue import LIBRARY_DIR
from instruments.loader import load_instrument
from instruments.schema import Instrument, Score
from instruments.scoring import score_frame, score_response

# --- the published keys, transcribed ------------------------------------------------------------


def transcribed(
    instrument_id: str,
    item_count: int,
    scale: tuple[int, int],
    scores: list[dict],
    reverse: tuple[int, ...] = (),
) -> Instrument:
    ids = [f"{instrument_id}_{n}" for n in range(1, item_count + 1)]

    def resolve(score: dict) -> dict:
        score = dict(score)
        if "positions" in score:
            score["items"] = [ids[n - 1] for n in score.pop("positions")]
        return {"label": {"en": score["id"]}, **score}

    return Instrument.model_validate(
        {
            "id": instrument_id,
            "name": instrument_id,
            "short_name": instrument_id,
            "version": "published key",
            "citation": "../shared/reference/instruments.md",
            "licence": {"name": "see the library file", "commercial_use": "unknown"},
            "wording": {"status": "local", "source": "scoring keys only"},
            "languages": ["en"],
            "response_scales": {"scale": {"min": scale[0], "max": scale[1]}},
            "items": [
                {"id": item_id, "scale": "scale", "reverse": n in reverse}
                for n, item_id in enumerate(ids, 1)
            ],
            "scores": [resolve(score) for score in scores],
            "sms": {"suitable": False},
        }
    )


def positions(first: int, last: int) -> list[int]:
    return list(range(first, last + 1))


PERMA_DOMAINS = {
    "p": (3, 13, 22),
    "e": (2, 10, 17),
    "r": (8, 19, 21),
    "m": (7, 9, 20),
    "a": (1, 5, 15),
    "n": (4, 14, 16),
    "h": (6, 12, 18),
}
PERMA_OVERALL = sorted([n for key in "perma" for n in PERMA_DOMAINS[key]] + [23])

TRANSCRIBED = {
    # WHO-5: raw = sum of 5 items (0-25); percentage = raw x 4.
    "who5": transcribed(
        "who5",
        5,
        (0, 5),
        [
            {"id": "raw", "positions": positions(1, 5), "method": "sum"},
            {"id": "percent", "transform": {"of": "raw", "multiply": 4}},
        ],
    ),
    # SWLS: sum of 5 items, 5-35.
    "swls": transcribed(
        "swls", 5, (1, 7), [{"id": "total", "positions": positions(1, 5), "method": "sum"}]
    ),
    # Flourishing Scale: sum of 8 items, 8-56.
    "flourishing_scale": transcribed(
        "fs", 8, (1, 7), [{"id": "total", "positions": positions(1, 8), "method": "sum"}]
    ),
    # FI/SFI: domain = mean of its 2 items; FI = items 1-10, SFI = all 12, as sum or mean.
    "flourish_index": transcribed(
        "fi",
        12,
        (0, 10),
        [
            *(
                {"id": f"d{d}", "positions": [2 * d - 1, 2 * d], "method": "mean"}
                for d in range(1, 7)
            ),
            {"id": "fi_sum", "positions": positions(1, 10), "method": "sum"},
            {"id": "fi_mean", "positions": positions(1, 10), "method": "mean"},
            {"id": "sfi_sum", "positions": positions(1, 12), "method": "sum"},
            {"id": "sfi_mean", "positions": positions(1, 12), "method": "mean"},
        ],
    ),
    # ULS-8 (1-4 form): sum after reversing items 3 and 6.
    "uls8": transcribed(
        "uls8",
        8,
        (1, 4),
        [{"id": "total", "positions": positions(1, 8), "method": "sum"}],
        reverse=(3, 6),
    ),
    # BPNSFS: six subscale means, no reversals. AS 1,7,13,19; AF 2,8,14,20; RS 3,9,15,21;
    # RF 4,10,16,22; CS 5,11,17,23; CF 6,12,18,24.
    "bpnsfs": transcribed(
        "bpnsfs",
        24,
        (1, 5),
        [
            {"id": name, "positions": list(range(start, 25, 6)), "method": "mean"}
            for start, name in enumerate(("as", "af", "rs", "rf", "cs", "cf"), 1)
        ],
    ),
    # UCLA-3: sum of 3 items on 1-3, 3-9.
    "ucla3": transcribed(
        "ucla3", 3, (1, 3), [{"id": "total", "positions": positions(1, 3), "method": "sum"}]
    ),
    # PERMA-Profiler, administration order A1 E1 P1 N1 A2 H1 M1 R1 M2 E2 Lon H2 P2 N2 A3 N3 E3
    # H3 R2 M3 R3 P3 hap: domains are means of 3 items; overall = mean of the 15 PERMA items and
    # hap.
    "perma_profiler": transcribed(
        "perma",
        23,
        (0, 10),
        [
            *(
                {"id": name, "positions": list(where), "method": "mean"}
                for name, where in PERMA_DOMAINS.items()
            ),
            {"id": "overall", "positions": PERMA_OVERALL, "method": "mean"},
        ],
    ),
}

SOURCES = ["transcribed", "library"]


def instrument_for(source: str, instrument_id: str) -> Instrument:
    """The published key as transcribed above, or the file the library ships."""
    if source == "transcribed":
        return TRANSCRIBED[instrument_id]
    return load_instrument(LIBRARY_DIR / f"{instrument_id}.yaml")


# --- finding scores by what they are -----------------------------------------------------------


def score_over(instrument: Instrument, item_positions, method: str) -> Score:
    """The score that takes the `method` of exactly the items at these 1-based positions."""
    wanted = {instrument.item_ids[n - 1] for n in item_positions}
    found = [
        score
        for score in instrument.scores
        if score.items and set(score.items) == wanted and score.method == method
    ]
    assert found, f"{instrument.id} has no {method} of items at positions {list(item_positions)}"
    return found[0]


def scores_spanning(instrument: Instrument, item_positions) -> list[Score]:
    """Every score built on exactly these items, directly or through other scores.

    FI and SFI may be defined as a sum or mean of items, as a mean of domain means (equal when
    every item is answered) or as a transform of one of those.
    """
    wanted = {instrument.item_ids[n - 1] for n in item_positions}

    def items_of(score: Score) -> set[str]:
        if score.items:
            return set(score.items)
        if score.scores:
            return set().union(*(items_of(instrument.score(part)) for part in score.scores))
        return items_of(instrument.score(score.transform.of))

    return [score for score in instrument.scores if items_of(score) == wanted]


def answers_in_order(instrument: Instrument, values) -> dict[str, object]:
    assert len(values) == len(instrument.items)
    return dict(zip(instrument.item_ids, values, strict=True))


# --- WHO-5 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_who5_worked_example_raw_13_is_52_percent(source):
    instrument = instrument_for(source, "who5")
    result = score_response(instrument, answers_in_order(instrument, (3, 2, 4, 1, 3)))
    raw = score_over(instrument, positions(1, 5), "sum")
    assert result.scores[raw.id] == 13
    [percent] = [s for s in instrument.scores if s.transform and s.transform.of == raw.id]
    assert result.scores[percent.id] == 52


@pytest.mark.parametrize("source", SOURCES)
def test_who5_is_complete_case(source):
    instrument = instrument_for(source, "who5")
    result = score_response(instrument, answers_in_order(instrument, (3, 2, None, 1, 3)))
    assert set(result.scores.values()) == {None}


# --- SWLS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_swls_first_three_rows_of_the_pallant_survey_data(source):
    instrument = instrument_for(source, "swls")
    rows = [(5, 5, 5, 6, 2), (4, 4, 4, 4, 4), (5, 5, 5, 6, 5)]
    total = score_over(instrument, positions(1, 5), "sum")
    for row, expected in zip(rows, (23, 20, 26), strict=True):
        assert (
            score_response(instrument, answers_in_order(instrument, row)).scores[total.id]
            == expected
        )


# --- Flourishing Scale --------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_flourishing_scale_studentlife_u01_pre_totals_45(source):
    instrument = instrument_for(source, "flourishing_scale")
    total = score_over(instrument, positions(1, 8), "sum")
    answers = answers_in_order(instrument, (4, 6, 6, 6, 7, 6, 4, 6))
    assert score_response(instrument, answers).scores[total.id] == 45


@pytest.mark.parametrize("source", SOURCES)
def test_flourishing_scale_blank_item_3_leaves_the_total_missing(source):
    # StudentLife u00 pre has item 3 blank; the reference does not give u00's other answers, and
    # under complete-case scoring any values leave the total missing.
    instrument = instrument_for(source, "flourishing_scale")
    total = score_over(instrument, positions(1, 8), "sum")
    answers = answers_in_order(instrument, (5, 6, None, 6, 6, 7, 5, 6))
    result = score_response(instrument, answers)
    assert result.scores[total.id] is None
    assert result.answered[total.id] == 7


# --- Flourish Index and Secure Flourish Index ---------------------------------------------------

FI_ITEMS = (8, 7, 6, 7, 8, 9, 7, 6, 8, 7, 5, 9)


@pytest.mark.parametrize("source", SOURCES)
def test_flourish_domains_are_the_worked_example_means(source):
    instrument = instrument_for(source, "flourish_index")
    result = score_response(instrument, answers_in_order(instrument, FI_ITEMS))
    expected = {1: 7.5, 2: 6.5, 3: 8.5, 4: 6.5, 5: 7.5, 6: 7.0}
    for domain, mean in expected.items():
        score = score_over(instrument, [2 * domain - 1, 2 * domain], "mean")
        assert result.scores[score.id] == pytest.approx(mean), f"D{domain}"


@pytest.mark.parametrize("source", SOURCES)
def test_flourish_index_is_73_as_a_sum_and_7_3_as_a_mean(source):
    instrument = instrument_for(source, "flourish_index")
    result = score_response(instrument, answers_in_order(instrument, FI_ITEMS))
    values = [result.scores[s.id] for s in scores_spanning(instrument, positions(1, 10))]
    assert values
    assert all(value in (pytest.approx(73), pytest.approx(7.3)) for value in values), values


@pytest.mark.parametrize("source", SOURCES)
def test_secure_flourish_index_is_87_as_a_sum_and_7_25_as_a_mean(source):
    instrument = instrument_for(source, "flourish_index")
    result = score_response(instrument, answers_in_order(instrument, FI_ITEMS))
    values = [result.scores[s.id] for s in scores_spanning(instrument, positions(1, 12))]
    assert values
    assert all(value in (pytest.approx(87), pytest.approx(7.25)) for value in values), values


@pytest.mark.parametrize("source", SOURCES)
def test_flourish_items_11_and_12_are_not_reversed(source):
    # Anchored so that 10 = "do not ever worry": reversing them again would be an error.
    instrument = instrument_for(source, "flourish_index")
    assert not instrument.items[10].reverse
    assert not instrument.items[11].reverse


# --- ULS-8 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_uls8_reverses_items_3_and_6_on_its_four_point_scale(source):
    instrument = instrument_for(source, "uls8")
    scale = instrument.scale_of(instrument.items[0])
    low = int(scale.min)
    # Answers as steps above the lowest point, so the example holds on a 1-4 or a 0-3 form:
    # steps (2, 1, 1, 2, 0, 0, 3, 1); items 3 and 6 reversed: step 1 -> 2, step 0 -> 3,
    # giving steps 2 + 1 + 2 + 2 + 0 + 3 + 3 + 1 = 14 above 8 x the lowest point.
    steps = (2, 1, 1, 2, 0, 0, 3, 1)
    answers = answers_in_order(instrument, [low + step for step in steps])
    total = score_over(instrument, positions(1, 8), "sum")
    assert score_response(instrument, answers).scores[total.id] == 14 + 8 * low
    assert [n for n, item in enumerate(instrument.items, 1) if item.reverse] == [3, 6]


def test_uls8_hand_example_on_the_one_to_four_transcribed_form():
    # 1-4 form: reversed value = 5 - x. (3,2,2,3,1,1,4,2) -> 3+2+(5-2)+3+1+(5-1)+4+2 = 22.
    instrument = TRANSCRIBED["uls8"]
    answers = answers_in_order(instrument, (3, 2, 2, 3, 1, 1, 4, 2))
    assert score_response(instrument, answers).scores["total"] == 22


# --- BPNSFS -------------------------------------------------------------------------------------

BPNSFS_ITEMS = (4, 2, 5, 1, 4, 2, 3, 3, 5, 1, 4, 3, 4, 2, 4, 2, 5, 2, 3, 4, 5, 1, 3, 1)
# AS = items 1, 7, 13, 19 = 4+3+4+3 = 14 -> 3.5     AF = 2, 8, 14, 20 = 2+3+2+4 = 11 -> 2.75
# RS = items 3, 9, 15, 21 = 5+5+4+5 = 19 -> 4.75    RF = 4, 10, 16, 22 = 1+1+2+1 = 5 -> 1.25
# CS = items 5, 11, 17, 23 = 4+4+5+3 = 16 -> 4.0    CF = 6, 12, 18, 24 = 2+3+2+1 = 8 -> 2.0
BPNSFS_MEANS = {1: 3.5, 2: 2.75, 3: 4.75, 4: 1.25, 5: 4.0, 6: 2.0}


@pytest.mark.parametrize("source", SOURCES)
def test_bpnsfs_subscale_means_without_reversal(source):
    instrument = instrument_for(source, "bpnsfs")
    result = score_response(instrument, answers_in_order(instrument, BPNSFS_ITEMS))
    for start, mean in BPNSFS_MEANS.items():
        score = score_over(instrument, range(start, 25, 6), "mean")
        assert result.scores[score.id] == pytest.approx(mean), score.id
    assert not any(item.reverse for item in instrument.items)


# --- UCLA-3 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_ucla3_is_the_sum_of_its_three_items(source):
    instrument = instrument_for(source, "ucla3")
    total = score_over(instrument, positions(1, 3), "sum")
    # 1 + 2 + 3 = 6, the lowest score the REDCap script calls "lonely".
    assert score_response(instrument, answers_in_order(instrument, (1, 2, 3))).scores[total.id] == 6
    assert not any(item.reverse for item in instrument.items)


# --- PERMA-Profiler -----------------------------------------------------------------------------

PERMA_ITEMS = (7, 6, 8, 3, 8, 7, 9, 6, 8, 5, 2, 6, 7, 2, 9, 4, 7, 8, 9, 7, 6, 9, 8)
# P = items 3, 13, 22 = 8+7+9 = 24 -> 8     E = 2, 10, 17 = 6+5+7 = 18 -> 6
# R = items 8, 19, 21 = 6+9+6 = 21 -> 7     M = 7, 9, 20 = 9+8+7 = 24 -> 8
# A = items 1, 5, 15 = 7+8+9 = 24 -> 8      N = 4, 14, 16 = 3+2+4 = 9 -> 3
# H = items 6, 12, 18 = 7+6+8 = 21 -> 7     overall = (24+18+21+24+24 + hap 8) / 16 = 7.4375
PERMA_MEANS = {"p": 8, "e": 6, "r": 7, "m": 8, "a": 8, "n": 3, "h": 7}


@pytest.mark.parametrize("source", SOURCES)
def test_perma_profiler_domain_means_and_overall_wellbeing(source):
    instrument = instrument_for(source, "perma_profiler")
    result = score_response(instrument, answers_in_order(instrument, PERMA_ITEMS))
    for domain, mean in PERMA_MEANS.items():
        score = score_over(instrument, PERMA_DOMAINS[domain], "mean")
        assert result.scores[score.id] == pytest.approx(mean), domain
    [overall] = scores_spanning(instrument, PERMA_OVERALL)
    assert result.scores[overall.id] == pytest.approx(7.4375)
    assert not any(item.reverse for item in instrument.items)


# --- published ranges ---------------------------------------------------------------------------

# (instrument, item positions, method): (lowest, highest), from the reference's scoring notes.
PUBLISHED_RANGES = [
    ("who5", positions(1, 5), "sum", (0, 25)),
    ("swls", positions(1, 5), "sum", (5, 35)),
    ("flourishing_scale", positions(1, 8), "sum", (8, 56)),
    ("flourish_index", positions(1, 10), "sum", (0, 100)),
    ("flourish_index", positions(1, 12), "sum", (0, 120)),
    ("ucla3", positions(1, 3), "sum", (3, 9)),
]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(("instrument_id", "where", "method", "expected"), PUBLISHED_RANGES)
def test_lowest_and_highest_answers_give_the_published_range(
    source, instrument_id, where, method, expected
):
    instrument = instrument_for(source, instrument_id)
    score_id = score_over(instrument, where, method).id
    lowest = {item.id: instrument.scale_of(item).min for item in instrument.items}
    highest = {item.id: instrument.scale_of(item).max for item in instrument.items}
    assert (
        score_response(instrument, lowest).scores[score_id],
        score_response(instrument, highest).scores[score_id],
    ) == expected


# --- the same values through score_frame --------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_score_frame_gives_the_swls_reference_totals(source):
    import pandas as pd

    instrument = instrument_for(source, "swls")
    rows = [(5, 5, 5, 6, 2), (4, 4, 4, 4, 4), (5, 5, 5, 6, 5)]
    frame = pd.DataFrame(rows, columns=list(instrument.item_ids))
    total = score_over(instrument, positions(1, 5), "sum")
    assert score_frame(instrument, frame)[total.id].tolist() == [23, 20, 26]
