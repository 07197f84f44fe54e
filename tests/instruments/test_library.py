"""The shipped library matches the published structure in ../shared/reference/instruments.md."""

from __future__ import annotations

import pytest

from instruments.catalogue import LIBRARY_DIR, Library, UnknownInstrumentError
from instruments.loader import InstrumentError, load_instrument
from instruments.translations import MissingWordingError, ready_for

from .definitions import MINIMAL

SHIPPED = {
    "bpnsfs",
    "flourish_index",
    "flourishing_scale",
    "perma_profiler",
    "sdwise7",
    "swls",
    "ucla3",
    "uls8",
    "who5",
}


@pytest.fixture(scope="module")
def library() -> Library:
    return Library.load()


def numbered(prefix: str, *numbers: int) -> tuple[str, ...]:
    return tuple(f"{prefix}_{n}" for n in numbers)


@pytest.mark.parametrize("path", sorted(LIBRARY_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_library_file_loads_and_is_named_by_its_id(path):
    assert load_instrument(path).id == path.stem


def test_the_library_holds_the_instruments_of_the_issue(library):
    assert set(library.ids) == SHIPPED


def test_bpnsfs_has_24_items_in_six_four_item_mean_subscales(library):
    bpnsfs = library.get("bpnsfs")
    assert len(bpnsfs.items) == 24
    subscales = {score.id: score for score in bpnsfs.scores}
    expected = {
        "autonomy_satisfaction": (1, 7, 13, 19),
        "autonomy_frustration": (2, 8, 14, 20),
        "relatedness_satisfaction": (3, 9, 15, 21),
        "relatedness_frustration": (4, 10, 16, 22),
        "competence_satisfaction": (5, 11, 17, 23),
        "competence_frustration": (6, 12, 18, 24),
    }
    assert set(subscales) == set(expected)  # no invented composites
    for score_id, numbers in expected.items():
        assert subscales[score_id].items == numbered("bpnsfs", *numbers)
        assert subscales[score_id].method == "mean"
    assert not any(item.reverse for item in bpnsfs.items)
    assert bpnsfs.item("bpnsfs_1").text["en"] == (
        "I feel a sense of choice and freedom in the things I undertake."
    )
    assert bpnsfs.wording.verified_against_official_form is False
    assert "anchors" in bpnsfs.wording.notes


def test_who5_raw_sum_and_percentage_times_four(library):
    who5 = library.get("who5")
    raw, percentage = who5.score("raw"), who5.score("percentage")
    assert (raw.method, raw.items) == ("sum", numbered("who5", 1, 2, 3, 4, 5))
    assert (percentage.transform.of, percentage.transform.multiply) == ("raw", 4)
    assert percentage.transform.add == 0
    scale = who5.response_scales["frequency6"]
    assert (scale.min, scale.max) == (0, 5)
    labels = {anchor.value: anchor.label["en"] for anchor in scale.anchors}
    assert labels[5] == "All of the time" and labels[0] == "At no time"
    assert who5.item("who5_4").text["en"] == "I woke up feeling fresh and rested."


@pytest.mark.parametrize(
    ("instrument_id", "count", "low", "high"),
    [("swls", 5, 1, 7), ("flourishing_scale", 8, 1, 7), ("ucla3", 3, 1, 3)],
)
def test_plain_sum_scales(library, instrument_id, count, low, high):
    instrument = library.get(instrument_id)
    total = instrument.score("total")
    assert total.method == "sum" and len(total.items) == count == len(instrument.items)
    assert not any(item.reverse for item in instrument.items)
    scale = instrument.scale_of(instrument.items[0])
    assert (scale.min, scale.max) == (low, high)


def test_uls8_reverses_exactly_items_3_and_6(library):
    uls8 = library.get("uls8")
    assert len(uls8.items) == 8
    assert [item.id for item in uls8.items if item.reverse] == ["uls8_3", "uls8_6"]
    assert uls8.score("total").method == "sum"
    scale = uls8.scale_of(uls8.items[0])
    assert scale.max - scale.min + 1 == 4


def test_flourish_index_domains_and_indices(library):
    fi = library.get("flourish_index")
    assert len(fi.items) == 12
    assert all((fi.scale_of(i).min, fi.scale_of(i).max) == (0, 10) for i in fi.items)
    for domain, pair in enumerate(((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12)), 1):
        score = next(s for s in fi.scores if s.id.startswith(f"d{domain}_"))
        assert (score.items, score.method) == (numbered("fi", *pair), "mean")
    assert (fi.score("fi").items, fi.score("fi").method) == (numbered("fi", *range(1, 11)), "sum")
    assert (fi.score("sfi").items, fi.score("sfi").method) == (numbered("fi", *range(1, 13)), "sum")
    assert fi.score("fi_mean").method == fi.score("sfi_mean").method == "mean"
    # Items 11-12 are anchored so that 10 = "do not ever worry": never reversed.
    assert not fi.item("fi_11").reverse and not fi.item("fi_12").reverse
    worry = fi.scale_of(fi.item("fi_11"))
    assert {a.value: a.label["en"] for a in worry.anchors} == {
        0: "Worry all of the time",
        10: "Do not ever worry",
    }


def test_perma_profiler_domains_single_items_and_overall(library):
    perma = library.get("perma_profiler")
    assert len(perma.items) == 23
    for score_id, letter in [
        ("positive_emotion", "p"),
        ("engagement", "e"),
        ("relationships", "r"),
        ("meaning", "m"),
        ("accomplishment", "a"),
        ("negative_emotion", "n"),
        ("health", "h"),
    ]:
        score = perma.score(score_id)
        assert score.items == tuple(f"perma_{letter}{n}" for n in (1, 2, 3))
        assert score.method == "mean"
    assert perma.score("loneliness").items == ("perma_lon",)
    assert perma.score("happiness").items == ("perma_hap",)
    overall = perma.score("overall")
    perma15 = {f"perma_{letter}{n}" for letter in "perma" for n in (1, 2, 3)}
    assert set(overall.items) == perma15 | {"perma_hap"} and len(overall.items) == 16
    assert not any(item.reverse for item in perma.items)
    assert perma.items[0].id == "perma_a1" and perma.items[-1].id == "perma_hap"


def test_sdwise7_structure_without_shipped_wording(library):
    sdwise = library.get("sdwise7")
    assert len(sdwise.items) == 7
    assert tuple(i.id for i in sdwise.items if i.reverse) == numbered("sdwise7", 2, 4, 5, 7)
    assert sdwise.wording.status == "local"
    assert all(item.text == {} for item in sdwise.items)
    assert "UNVERIFIED" in sdwise.score("total").interpretation


@pytest.mark.parametrize(
    ("instrument_id", "use"),
    [
        ("who5", "allowed"),
        ("swls", "allowed"),
        ("flourishing_scale", "allowed"),
        ("flourish_index", "not_allowed"),
        ("bpnsfs", "needs_permission"),
        ("perma_profiler", "needs_permission"),
        ("ucla3", "unknown"),
        ("uls8", "unknown"),
        ("sdwise7", "unknown"),
    ],
)
def test_licence_terms(library, instrument_id, use):
    assert library.get(instrument_id).licence.commercial_use == use


def test_flourish_index_is_cc_by_nc(library):
    assert library.get("flourish_index").licence.name == "CC BY-NC 4.0"


def test_wording_is_local_exactly_where_its_terms_are_unknown(library):
    for instrument in library:
        unknown_terms = instrument.licence.commercial_use == "unknown"
        assert (instrument.wording.status == "local") == unknown_terms, instrument.id
        assert ready_for(instrument, "en") == (not unknown_terms), instrument.id


def test_long_instruments_are_not_offered_by_sms(library):
    suitable = {instrument.id for instrument in library if instrument.sms.suitable}
    assert "perma_profiler" not in suitable and "bpnsfs" not in suitable
    assert {"who5", "swls", "ucla3"} <= suitable


def test_commercial_only_keeps_instruments_whose_licence_allows_it(library):
    commercial = library.exclude_non_commercial()
    assert set(commercial.ids) == {"who5", "swls", "flourishing_scale"}
    with pytest.raises(UnknownInstrumentError) as caught:
        commercial.get("flourish_index")
    assert "excluded" in str(caught.value) and "CC BY-NC 4.0" in str(caught.value)
    assert set(Library.load(commercial_only=True).ids) == set(commercial.ids)


def test_an_unknown_id_suggests_the_closest(library):
    with pytest.raises(UnknownInstrumentError) as caught:
        library.get("who_5")
    assert str(caught.value) == "unknown instrument 'who_5'; did you mean 'who5'?"


def test_a_study_directory_adds_custom_instruments_and_wording(tmp_path):
    (tmp_path / "mood3.yaml").write_text(MINIMAL)
    (tmp_path / "ucla3.wording.yaml").write_text(
        "instrument: ucla3\nlanguages:\n  en:\n    items:\n"
        "      ucla3_1: First.\n      ucla3_2: Second.\n      ucla3_3: Third.\n"
    )
    library = Library.load(tmp_path)
    assert "mood3" in library and set(library.ids) == SHIPPED | {"mood3"}
    assert library.localize("ucla3", "en").items[1].text == "Second."
    assert library.entry("ucla3").wording_paths == (tmp_path / "ucla3.wording.yaml",)


def test_missing_wording_names_the_file_in_the_study_directory(tmp_path):
    library = Library.load(tmp_path)
    with pytest.raises(MissingWordingError) as caught:
        library.localize("uls8", "en")
    assert caught.value.missing == tuple(f"uls8_{n}" for n in range(1, 9))
    assert caught.value.wording_file == f"{tmp_path}/uls8.wording.yaml"


def test_duplicate_ids_across_files_name_both_files(tmp_path):
    (tmp_path / "a.yaml").write_text(MINIMAL)
    (tmp_path / "b.yaml").write_text(MINIMAL)
    (tmp_path / "who5_copy.yaml").write_text((LIBRARY_DIR / "who5.yaml").read_text())
    with pytest.raises(InstrumentError) as caught:
        Library.load(tmp_path)
    assert [str(p) for p in caught.value.problems] == [
        f"{tmp_path / 'b.yaml'}:1: id: instrument 'mood3' is already defined in "
        f"{tmp_path / 'a.yaml'}",
        f"{tmp_path / 'who5_copy.yaml'}:2: id: instrument 'who5' is already defined in "
        f"{LIBRARY_DIR / 'who5.yaml'}",
    ]


def test_problems_of_every_study_file_are_reported_together(tmp_path):
    (tmp_path / "a.yaml").write_text(MINIMAL.replace("citation:", "citaton:"))
    (tmp_path / "x.wording.yaml").write_text("instrument: who_5\nlanguages: {}\n")
    with pytest.raises(InstrumentError) as caught:
        Library.load(tmp_path)
    reported = [str(p) for p in caught.value.problems]
    assert f"{tmp_path / 'a.yaml'}:5: citaton: unknown key 'citaton'; did you mean 'citation'?" in (
        reported
    )
    assert (
        f"{tmp_path / 'x.wording.yaml'}:1: instrument: unknown instrument 'who_5'; "
        "did you mean 'who5'?"
    ) in reported
