"""Who reaches what: every route of the app, by method, for every persona.

`ACCESS` below is the specification. Each (rule, method) of `app.url_map` must have a row, so a
new route without a decision about who may reach it fails `test_every_route_has_a_row`. The
columns are the personas: anonymous, a participant with a portal session, and the four researcher
roles. An outcome is one of

- `ALLOWED`: the view answered (2xx, a redirect other than to the login page, or its own
  400/422 about the form; requests carry a valid CSRF token and harmless or empty forms),
- `LOGIN`: a redirect to the login page,
- 401, 403, 404: refused with that status,
- `None`: not checked here (Dash's machine routes for signed-in researchers, which
  tests/dashboards covers callback by callback).

URL parameters get concrete values from the fixture world (tests/security/conftest.py). The
table is also rendered into docs/security.md, and a test keeps the two the same.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.security.conftest import PERSONAS

ALLOWED, LOGIN = "allowed", "login"
A, L = ALLOWED, LOGIN

# Rows by area. Columns: anonymous, participant, admin, investigator, coordinator, analyst.
# Rows that change state come last within their area and use forms the view refuses (400) or
# that change nothing, so the order of the rows does not matter.
ACCESS: dict[tuple[str, str], tuple] = {
    # Sign-in, health, static files, the home redirect.
    ("/", "GET"): (L, L, A, A, A, A),
    ("/login", "GET"): (A, A, A, A, A, A),
    ("/login", "POST"): (A, A, A, A, A, A),
    ("/logout", "POST"): (L, L, L, L, L, L),  # signs out and sends everyone to the login page
    ("/healthz", "GET"): (A, A, A, A, A, A),
    ("/static/<path:filename>", "GET"): (A, A, A, A, A, A),
    # Researcher pages: view_study for every role; actions by permission (study/accounts.py).
    ("/studies/", "GET"): (L, L, A, A, A, A),
    ("/studies/<slug>", "GET"): (L, L, A, A, A, A),
    ("/studies/<slug>/participants/", "GET"): (L, L, A, A, A, A),
    ("/studies/<slug>/participants/<code>", "GET"): (L, L, A, A, A, A),
    ("/studies/<slug>/participants/<code>/timezone", "POST"): (L, L, A, A, A, 403),
    ("/studies/<slug>/participants/<code>/withdraw", "POST"): (L, L, A, A, A, 403),
    ("/studies/<slug>/participants/<code>/export", "POST"): (L, L, A, A, 403, 403),
    ("/studies/<slug>/participants/<code>/erase", "POST"): (L, L, A, A, 403, 403),
    # Dashboards: pages redirect to sign-in, the renderer's routes answer 401 JSON.
    ("/dashboard/", "GET"): (L, L, A, A, A, A),
    ("/dashboard/<path:path>", "GET"): (L, L, A, A, A, A),
    ("/dashboard/_dash-layout", "GET"): (401, 401, A, A, A, A),
    ("/dashboard/_dash-dependencies", "GET"): (401, 401, A, A, A, A),
    ("/dashboard/_dash-update-component", "POST"): (401, 401, None, None, None, None),
    ("/dashboard/_reload-hash", "GET"): (401, 401, None, None, None, None),
    ("/dashboard/_favicon.ico", "GET"): (401, 401, None, None, None, None),
    ("/dashboard/assets/<path:filename>", "GET"): (401, 401, None, None, None, None),
    (
        "/dashboard/_dash-component-suites/<string:package_name>/<path:fingerprinted_path>",
        "GET",
    ): (401, 401, None, None, None, None),
    # Joining a study: public by design (the study link); each step re-checks the ones before.
    ("/join/<slug>", "GET"): (A, A, A, A, A, A),
    ("/join/<slug>/information", "GET"): (A, A, A, A, A, A),
    ("/join/<slug>/information/<int:number>", "GET"): (A, A, A, A, A, A),
    ("/join/<slug>/not-eligible", "GET"): (A, A, A, A, A, A),
    ("/join/<slug>/screening", "GET"): (A, A, A, A, A, A),
    ("/join/<slug>/screening", "POST"): (A, A, A, A, A, A),
    ("/join/<slug>/questions", "GET"): (A, A, A, A, A, A),
    ("/join/<slug>/questions", "POST"): (A, A, A, A, A, A),
    ("/join/<slug>/sign", "GET"): (A, A, A, A, A, A),
    ("/join/<slug>/sign", "POST"): (A, A, A, A, A, A),
    ("/join/<slug>/signed", "GET"): (A, A, A, A, A, A),
    ("/join/<slug>/consent-copy", "GET"): (A, A, A, A, A, A),
    ("/join/<slug>/baseline", "GET"): (A, A, A, A, A, A),
    ("/join/<slug>/baseline", "POST"): (A, A, A, A, A, A),
    ("/join/<slug>/contact", "GET"): (A, A, A, A, A, A),
    ("/join/<slug>/contact", "POST"): (A, A, A, A, A, A),
    ("/join/<slug>/settings", "GET"): (A, A, A, A, A, A),
    ("/join/<slug>/settings", "POST"): (A, A, A, A, A, A),
    ("/join/<slug>/join-now", "GET"): (A, A, A, A, A, A),
    ("/join/<slug>/join-now", "POST"): (A, A, A, A, A, A),
    ("/join/<slug>/welcome", "GET"): (A, A, A, A, A, A),
    # Survey links: the signed token is the credential, whoever holds it.
    ("/s/<token>", "GET"): (A, A, A, A, A, A),
    ("/s/<token>", "POST"): (A, A, A, A, A, A),
    # The participant portal: only the participant's own session. Researchers are not
    # participants: they get what anyone without a portal session gets.
    ("/p/<token>", "GET"): (A, A, A, A, A, A),  # the portal link is the credential
    ("/p/", "GET"): (403, A, 403, 403, 403, 403),
    ("/p/timezone", "GET"): (403, A, 403, 403, 403, 403),
    ("/p/timezone", "POST"): (403, A, 403, 403, 403, 403),
    ("/p/consent-copy", "GET"): (403, A, 403, 403, 403, 403),
    ("/p/reconsent", "GET"): (403, A, 403, 403, 403, 403),
    ("/p/reconsent", "POST"): (403, A, 403, 403, 403, 403),
    ("/p/withdraw", "GET"): (403, A, 403, 403, 403, 403),
    # The chat answers 404 to anyone without an enrolled participant in an assistant arm.
    ("/p/chat/", "GET"): (404, A, 404, 404, 404, 404),
    ("/p/chat/messages", "POST"): (404, A, 404, 404, 404, 404),
    ("/p/chat/turns/<int:turn_id>/reply", "POST"): (404, A, 404, 404, 404, 404),
    ("/p/chat/new", "POST"): (404, A, 404, 404, 404, 404),
    ("/p/chat/<any(memory, goals):kind>", "GET"): (404, A, 404, 404, 404, 404),
    ("/p/chat/<any(memory, goals):kind>", "POST"): (404, A, 404, 404, 404, 404),
    ("/p/chat/<any(memory, goals):kind>/<int:entry_id>", "POST"): (404, A, 404, 404, 404, 404),
    ("/p/withdraw", "POST"): (403, A, 403, 403, 403, 403),  # withdraws: last of the portal
    # Machines: Twilio signs its webhooks; the ingest API takes bearer keys, never cookies.
    ("/twilio/sms", "POST"): (403, 403, 403, 403, 403, 403),
    ("/twilio/status", "POST"): (403, 403, 403, 403, 403, 403),
    ("/api/v1/interactions", "POST"): (401, 401, 401, 401, 401, 401),
    ("/api/v1/openapi.json", "GET"): (A, A, A, A, A, A),
}

# Within a route, a query string can ask for more than the route gives everyone: contact details
# and typed signatures need `view_contacts`, which analysts never hold.
VARIANTS: dict[tuple[str, str], tuple] = {
    ("/studies/<slug>/participants/?contacts=1", "GET"): (L, L, A, A, A, 403),
    ("/studies/<slug>/participants/<code>?contacts=1", "GET"): (L, L, A, A, A, 403),
}

# Forms the views refuse or that change nothing, so that every persona can be tried.
FORMS: dict[tuple[str, str], dict[str, str]] = {
    ("/studies/<slug>/participants/<code>/timezone", "POST"): {"timezone": "Not/AZone"},
    ("/studies/<slug>/participants/<code>/withdraw", "POST"): {"reason": "no confirm box"},
    ("/studies/<slug>/participants/<code>/erase", "POST"): {"confirm_code": "NOT-THE-CODE"},
    ("/p/timezone", "POST"): {"timezone": "Not/AZone"},
    ("/p/chat/messages", "POST"): {"message": ""},
    ("/p/chat/<any(memory, goals):kind>", "POST"): {"text": ""},
    ("/p/chat/<any(memory, goals):kind>/<int:entry_id>", "POST"): {"text": ""},
}


def concrete(rule: str, world) -> str:
    """`rule` with its parameters filled in from the fixture world."""
    values = {
        "slug": world.slug,
        "code": world.code,
        "number": "1",
        "turn_id": str(world.turn_id),
        "entry_id": str(world.note_id),
        "filename": "flourish.css",
        "path": "overview",
        "package_name": "dash",
        "fingerprinted_path": "dash-renderer/build/dash_renderer.min.js",
        "kind": "memory",
    }
    if rule.startswith("/s/"):
        values["token"] = world.survey_token
    elif rule.startswith("/p/"):
        values["token"] = world.portal_token

    def fill(match: re.Match) -> str:
        return values[match.group(1)]

    return re.sub(r"<(?:[^:<>]+:)?(\w+)>", fill, rule)


def outcome(response) -> str | int:
    """How a response reads in the table's terms."""
    status = response.status_code
    if status in (301, 302, 303, 307, 308):
        location = response.headers.get("Location", "")
        return LOGIN if re.match(r"^(https?://[^/]+)?/login(\?|$)", location) else ALLOWED
    if status < 300 or status == 422:
        return ALLOWED
    if status == 400:
        # A view's own refusal of a form, never a missing token (every request here has one).
        assert "CSRF" not in response.get_data(as_text=True), "CSRF refused a request with a token"
        return ALLOWED
    return status


def app_routes(app) -> set[tuple[str, str]]:
    return {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def test_every_route_has_a_row_and_every_row_a_route(app):
    routes = app_routes(app)
    missing = sorted(routes - ACCESS.keys())
    assert not missing, f"routes with no access decision in ACCESS: {missing}"
    assert not sorted(ACCESS.keys() - routes), "rows for routes the app does not have"


def test_a_route_added_without_a_row_is_noticed(app):
    app.add_url_rule("/studies/<slug>/secret", "secret", lambda slug: "", methods=["POST"])
    assert app_routes(app) - ACCESS.keys() == {("/studies/<slug>/secret", "POST")}


@pytest.mark.parametrize("name", PERSONAS)
def test_each_persona_reaches_exactly_what_the_table_says(name, persona, world):
    column = PERSONAS.index(name)
    client = persona(name)
    wrong = []
    for (rule, method), expected in {**ACCESS, **VARIANTS}.items():
        if expected[column] is None:
            continue
        response = client.open(
            method, concrete(rule, world), data=dict(FORMS.get((rule, method), {}))
        )
        got = outcome(response)
        if got != expected[column]:
            wrong.append(
                f"{method} {rule}: expected {expected[column]}, got {got} "
                f"({response.status_code} {response.headers.get('Location', '')})"
            )
    assert not wrong, "\n".join(wrong)


# --- the table in docs/security.md ---------------------------------------------------------------

DOC = Path(__file__).parents[2] / "docs/security.md"
SYMBOLS = {ALLOWED: "yes", LOGIN: "login", None: "(dash)"}


def markdown_table() -> str:
    """ACCESS as the Markdown table in docs/security.md."""
    header = "| Route | Method | " + " | ".join(PERSONAS) + " |"
    lines = [header, "|" + "---|" * (len(PERSONAS) + 2)]
    for (rule, method), row in {**ACCESS, **VARIANTS}.items():
        cells = [SYMBOLS.get(cell, str(cell)) for cell in row]
        lines.append(f"| `{rule}` | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_the_documented_table_is_this_table():
    assert markdown_table() in DOC.read_text(), (
        "docs/security.md's access table differs from ACCESS; regenerate it with "
        "`python -m tests.security.test_route_access`"
    )


if __name__ == "__main__":
    print(markdown_table())
