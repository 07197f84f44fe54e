"""Researchers see the studies loaded on the server and read each one's protocol."""

from __future__ import annotations

import pytest

from study.protocol import load_protocol
from tests.study.web.conftest import EXAMPLE


def test_anonymous_visitors_are_sent_to_the_login_page(client, example_study):
    for path in ("/studies/", f"/studies/{example_study.slug}"):
        response = client.get(path)
        assert response.status_code == 302
        assert "/login" in response.headers["Location"]


def test_an_empty_server_says_how_to_load_a_study(client, make_researcher, login):
    login(make_researcher("investigator"))
    page = client.get("/studies/").get_data(as_text=True)
    assert "No study is loaded yet" in page
    assert "flourish protocol load" in page


@pytest.mark.parametrize("role", ["admin", "investigator", "coordinator", "analyst"])
def test_every_role_sees_the_study_list_and_the_protocol(
    client, make_researcher, login, example_study, role
):
    login(make_researcher(role))
    listing = client.get("/studies/").get_data(as_text=True)
    assert example_study.title in listing
    detail = client.get(f"/studies/{example_study.slug}")
    assert detail.status_code == 200
    page = detail.get_data(as_text=True)
    for arm in ("instruct", "reflective", "control"):
        assert f"<code>{arm}</code>" in page
    assert "permuted blocks" in page
    assert "week_24" in page
    assert "Protocol versions" in page


def test_the_study_page_shows_each_assistants_instructions_hash(
    client, make_researcher, login, example_study
):
    protocol = load_protocol(EXAMPLE)
    constitution = next(
        ref for path, ref in protocol.referenced_files.items() if "constitution" in path
    )
    login(make_researcher("analyst"))
    page = client.get(f"/studies/{example_study.slug}").get_data(as_text=True)
    assert constitution.sha256[:16] in page
    assert protocol.content_hash in page


def test_an_unknown_study_is_not_found(client, make_researcher, login):
    login(make_researcher("admin"))
    assert client.get("/studies/no-such-study").status_code == 404


def test_pages_carry_security_headers(client):
    response = client.get("/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
