"""Survey links: signed with the secret key, one occasion each, never guessable or forgeable."""

from __future__ import annotations

import dataclasses

import pytest
from itsdangerous import URLSafeSerializer

from study.schedule.links import SALT, survey_link, survey_token, verify_survey_token


def token_of(link: str) -> str:
    return link.rsplit("/s/", 1)[1]


def test_a_link_lives_under_the_public_url_and_leads_back_to_its_occasion(settings):
    link = survey_link(settings, 42)

    assert link.startswith("https://study.example.org/s/")
    assert verify_survey_token(settings, token_of(link)) == 42


def test_two_links_to_the_same_occasion_differ(settings):
    first, second = survey_link(settings, 7), survey_link(settings, 7)

    assert first != second
    assert verify_survey_token(settings, token_of(first)) == 7
    assert verify_survey_token(settings, token_of(second)) == 7


def test_a_given_nonce_makes_the_token_reproducible(settings):
    assert survey_token(settings, 7, nonce="attempt-1") == survey_token(
        settings, 7, nonce="attempt-1"
    )
    assert survey_token(settings, 7, nonce="attempt-1") != survey_token(
        settings, 7, nonce="attempt-2"
    )


def test_the_occasion_id_cannot_be_changed_in_a_token(settings):
    token = survey_token(settings, 7)
    payload, signature = token.rsplit(".", 1)
    forged = URLSafeSerializer("a guess", salt=SALT).dumps([8, "nonce"]).rsplit(".", 1)[0]

    assert verify_survey_token(settings, f"{forged}.{signature}") is None
    assert verify_survey_token(settings, payload + "." + signature[::-1]) is None
    assert verify_survey_token(settings, token[:-1] + ("A" if token[-1] != "A" else "B")) is None


def test_a_token_signed_with_another_key_or_for_another_purpose_is_refused(settings):
    other_key = dataclasses.replace(settings, secret_key="another-secret-" + "y" * 32)
    portal_token = URLSafeSerializer(settings.secret_key, salt="participant-portal").dumps(
        [7, "nonce"]
    )

    assert verify_survey_token(settings, survey_token(other_key, 7)) is None
    assert verify_survey_token(settings, portal_token) is None


@pytest.mark.parametrize("token", ["", "not-a-token", "a.b", "x" * 1000])
def test_garbage_is_refused(settings, token):
    assert verify_survey_token(settings, token) is None


@pytest.mark.parametrize("payload", [{"o": 7}, [7], [True, "n"], [-3, "n"], ["7", "n"], 7])
def test_a_validly_signed_token_of_the_wrong_shape_is_refused(settings, payload):
    token = URLSafeSerializer(settings.secret_key, salt=SALT).dumps(payload)

    assert verify_survey_token(settings, token) is None


@pytest.mark.parametrize("occasion_id", [0, -1, True, "7", None])
def test_only_real_occasion_ids_get_links(settings, occasion_id):
    with pytest.raises(ValueError, match="occasion id"):
        survey_link(settings, occasion_id)


def test_links_need_a_secret_key(settings):
    with pytest.raises(ValueError, match="FLOURISH_SECRET_KEY"):
        survey_link(dataclasses.replace(settings, secret_key=""), 7)
