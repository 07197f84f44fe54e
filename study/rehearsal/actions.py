"""What a simulated participant does, through the same doors a real one uses.

`Browser` is one person's browser (a Flask test client with its own cookies) on the real
pages: the study link, screener, information, comprehension questions, signature, baseline,
contacts, time zone, joining, survey links, the portal's withdraw form and the assistant chat.
Every form is posted with the CSRF token of the page it came from. `Phone` sends text messages
to the real Twilio webhook, signed with the account's auth token as Twilio signs them.
"""

from __future__ import annotations

import html
import re
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from flask import Flask
from twilio.request_validator import RequestValidator

from .population import Persona

_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
_RADIO = re.compile(r'<input\b[^>]*type="radio"[^>]*>')
_ATTR = re.compile(r'(\w[\w-]*)="([^"]*)"')
_PAGE = re.compile(r'<input\b[^>]*name="page"[^>]*value="(\d+)"')


class JourneyError(RuntimeError):
    """A page did not answer as a participant's next step expects (a rehearsal finding)."""


@dataclass
class WebAnswer:
    """What one visit to a survey link achieved."""

    status: str  # "submitted", "closed", "unavailable"
    acknowledged: dict[str, str] = field(default_factory=dict)  # field name -> value posted


def radio_fields(page: str) -> dict[str, list[str]]:
    """Radio groups on a page: field name -> allowed values, in page order."""
    groups: dict[str, list[str]] = {}
    for tag in _RADIO.findall(page):
        attrs = dict(_ATTR.findall(tag))
        if "name" in attrs and "value" in attrs:
            groups.setdefault(html.unescape(attrs["name"]), []).append(
                html.unescape(attrs["value"])
            )
    return groups


class Browser:
    """One persona's browser on the study's pages."""

    def __init__(self, app: Flask, persona: Persona, slug: str) -> None:
        self.client = app.test_client()
        self.persona = persona
        self.join = f"/join/{slug}"

    def _page(self, url: str) -> str:
        response = self.client.get(url)
        if response.status_code != 200:
            raise JourneyError(f"GET {url}: {response.status_code} {response.location or ''}")
        return response.get_data(as_text=True)

    def _submit(self, url: str, data: dict, *, form_url: str | None = None, expect: str = ""):
        match = _CSRF.search(self._page(form_url or url))
        if match is None:
            raise JourneyError(f"{form_url or url} has no CSRF token")
        response = self.client.post(url, data={"csrf_token": match.group(1), **data})
        if expect and not (response.status_code in (302, 303) and response.location == expect):
            raise JourneyError(
                f"POST {url}: {response.status_code} to {response.location!r}, expected {expect}"
            )
        return response

    # --- enrollment ---------------------------------------------------------------------------

    def enrol(self, comprehension: dict[str, str], baseline_value) -> bool:
        """Walk the whole journey; False when the screener finds the person not eligible."""
        p, join = self.persona, self.join
        self._page(join)
        screener = {
            "age": str(p.age),
            "owns_mobile": "yes",
            "reads_english": "yes",
            "crisis_care": "no" if p.eligible else "yes",
        }
        response = self._submit(f"{join}/screening", screener)
        if not p.eligible:
            if response.location != f"{join}/not-eligible":
                raise JourneyError(f"an ineligible person was sent to {response.location}")
            return False
        self._page(f"{join}/information")
        if p.comprehension_slip:
            wrong = dict(comprehension, allocation_by_chance="researcher")
            response = self._submit(f"{join}/questions", wrong)
            if response.status_code != 200:
                raise JourneyError("a wrong comprehension answer was not asked again")
        self._submit(f"{join}/questions", comprehension, expect=f"{join}/sign")
        signature = {"signed_name": f"Rehearsal Person {p.index}"}
        signature |= {"store_chat_content": "y"} if p.stores_chat else {}
        signature |= {"ema": "y"} if p.ema else {}
        self._submit(f"{join}/sign", signature, expect=f"{join}/signed")
        baseline_page = self._page(f"{join}/baseline")
        answers = {
            name: baseline_value(values) for name, values in radio_fields(baseline_page).items()
        }
        self._submit(f"{join}/baseline", answers, expect=f"{join}/contact")
        contacts = {"channel": p.channel, "phone": p.phone, "email": p.email}
        self._submit(f"{join}/contact", contacts, expect=f"{join}/settings")
        self._submit(
            f"{join}/settings",
            {"timezone": p.timezone, "language": "en"},
            expect=f"{join}/join-now",
        )
        self._submit(f"{join}/join-now", {}, expect=f"{join}/welcome")
        self._page(f"{join}/welcome")
        with self.client.session_transaction() as flask_session:
            p.code = flask_session["participant"]
        return True

    # --- surveys ------------------------------------------------------------------------------

    def answer_survey(self, path: str, choose) -> WebAnswer:
        """Open a survey link and answer page after page until the thank-you page."""
        acknowledged: dict[str, str] = {}
        for _ in range(50):
            response = self.client.get(path)
            page = response.get_data(as_text=True)
            if response.status_code == 410 or "has closed" in page:
                return WebAnswer("closed", acknowledged)
            if response.status_code != 200:
                return WebAnswer("unavailable", acknowledged)
            fields = radio_fields(page)
            if not fields:
                status = "submitted" if "Your answers have been sent" in page else "unavailable"
                return WebAnswer(status, acknowledged)
            number = _PAGE.search(page)
            data = {name: choose(values) for name, values in fields.items()}
            posted = self.client.post(
                path,
                data={"csrf_token": _CSRF.search(page).group(1), "page": number.group(1), **data},
            )
            if posted.status_code != 303:
                return WebAnswer(
                    "closed" if posted.status_code == 410 else "unavailable", acknowledged
                )
            acknowledged |= data
            path = posted.location
        raise JourneyError(f"survey {path} did not end after 50 pages")

    def open_late(self, path: str) -> int:
        """Open a link after its window: the status code of the page shown."""
        return self.client.get(path).status_code

    # --- portal -------------------------------------------------------------------------------

    def withdraw(self) -> None:
        self._submit("/p/withdraw", {"reason": "rehearsal"}, expect="/p/")

    def chat(self, text: str) -> bool:
        """Send one message in the chat (the no-JavaScript form); True when a reply is shown."""
        page = self._page("/p/chat/")
        token = _CSRF.search(page).group(1)
        response = self.client.post("/p/chat/messages", data={"csrf_token": token, "message": text})
        if response.status_code != 303:
            return False
        after = self._page("/p/chat/")
        last_turn = after.rsplit('class="chat-turn ', 1)[-1]
        return last_turn.startswith('chat-from-assistant"')


class Phone:
    """Text messages from participants to the study's Twilio webhook."""

    PATH = "/twilio/sms"

    def __init__(self, app: Flask, public_url: str, auth_token: str, study_number: str) -> None:
        self.client = app.test_client()
        self.url = public_url + self.PATH
        self.validator = RequestValidator(auth_token)
        self.study_number = study_number

    def send(self, sender: str, body: str) -> str:
        """Post an inbound SMS as Twilio would; returns the text of our reply ('' for none)."""
        params = {
            "MessageSid": "SM" + secrets.token_hex(16),
            "AccountSid": "AC" + "0" * 32,
            "From": sender,
            "To": self.study_number,
            "Body": body,
            "NumMedia": "0",
        }
        signature = self.validator.compute_signature(self.url, params)
        response = self.client.post(
            self.PATH, data=params, headers={"X-Twilio-Signature": signature}
        )
        if response.status_code != 200:
            raise JourneyError(f"the SMS webhook answered {response.status_code}")
        root = ET.fromstring(response.get_data(as_text=True))
        return "\n".join(message.text or "" for message in root.iter("Message"))
