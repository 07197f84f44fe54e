"""A fake of Twilio's Messages REST API behind the `twilio` library's pluggable HTTP client.

The real `twilio.rest.Client` does all the request building, authentication and response
parsing; only the HTTP round trip is replaced, so a test exercises the same code paths as
production and never reaches the network::

    from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

    fake = FakeTwilio()                       # optionally FakeTwilio(clock=clock)
    client = fake.client()                    # == twilio.rest.Client(ACCOUNT_SID, AUTH_TOKEN,
                                              #                       http_client=fake)
    channels = build_channels(settings_with_twilio, twilio_http_client=fake)

What it implements (under https://api.twilio.com/2010-04-01/Accounts/{AccountSid}/):

- ``POST Messages.json`` creates a message with an ``SM`` + 32 hex sid and status ``queued``
  (``accepted`` when sent through a messaging service) and records it. Like Twilio it answers
  400 with code 21211 for a ``To`` that is not E.164, 21602 without ``Body``, 21603 without
  ``From``/``MessagingServiceSid``, and 401 (code 20003) for wrong credentials.
- ``GET Messages/SMxxx.json`` returns that message (404, code 20404, for an unknown sid).
- ``GET Messages.json`` lists messages newest first, filtered by ``To`` and ``From``.

Inspecting what was sent:

- ``fake.messages``: every created message (`FakeMessage`: sid, to, from_,
  messaging_service_sid, body, status, status_callback, created_at), oldest first;
  ``fake.message_count``; ``fake.messages_to("+447700900123")``; ``fake.get(sid)``.
- ``fake.requests``: every HTTP request seen (`FakeRequest`: method, url, params, data),
  including the ones that were made to fail.

Injecting failures (each consumes one request, any method, in the order they were added):

- ``fake.fail_next(count=1, status=500, code=None, message=...)``: answer with that HTTP status
  and Twilio error code, creating nothing (e.g. ``status=429``; ``status=400, code=21211``).
- ``fake.fail_network(count=1)``: raise ``requests.ConnectionError`` before the request
  "reaches" Twilio, as the real HTTP client does when the network is down; nothing is created.
- ``fake.lose_responses(count=1)``: the message IS created, then ``requests.ConnectionError`` is
  raised, as when a connection drops after Twilio accepted the request: the caller does not
  learn the sid, but ``fake.messages`` shows the message went out (crash-safety tests).
- ``fake.reject(number, code=21610, status=400)``: every message to ``number`` is refused with
  that code from now on (21610: the recipient replied STOP; 21614: not a mobile number).
- ``fake.set_status(sid, "delivered")``: what later fetches of the message report.
- ``fake.on_create = callback``: called with each `FakeMessage` right after it is recorded and
  before the response is returned; raise from it to simulate a crash at that instant.

The fake is thread-safe: dispatchers running in several threads may share one.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

import requests
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "fake-twilio-auth-token"
API_HOST = "api.twilio.com"

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_MESSAGES = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>AC\w+)/Messages(?:/(?P<sid>\w+))?\.json$"
)


@dataclass
class FakeMessage:
    """A message as the fake Twilio holds it."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status: str
    status_callback: str | None
    created_at: datetime
    error_code: int | None = None

    def as_json(self) -> dict:
        """The resource representation Twilio returns (the fields the library reads)."""
        created = format_datetime(self.created_at, usegmt=True)
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "to": self.to,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "body": self.body,
            "status": self.status,
            "num_segments": "1",
            "num_media": "0",
            "direction": "outbound-api",
            "date_created": created,
            "date_updated": created,
            "date_sent": None if self.status in ("accepted", "queued") else created,
            "error_code": self.error_code,
            "error_message": None,
            "price": None,
            "price_unit": "USD",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{self.sid}.json",
            "subresource_uris": {},
        }


@dataclass(frozen=True)
class FakeRequest:
    method: str
    url: str
    params: dict
    data: dict


@dataclass
class _Failure:
    kind: str  # "http", "network" or "lost"
    status: int = 500
    code: int | None = None
    message: str = ""


@dataclass
class FakeTwilio(HttpClient):
    """The fake; see the module docstring for its whole API."""

    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    clock: object | None = None
    messages: list[FakeMessage] = field(default_factory=list)
    requests: list[FakeRequest] = field(default_factory=list)
    on_create: Callable[[FakeMessage], None] | None = None

    def __post_init__(self) -> None:
        super().__init__(logging.getLogger("tests.fake_twilio"), is_async=False)
        self._lock = threading.RLock()
        self._failures: list[_Failure] = []
        self._rejected: dict[str, tuple[int, int]] = {}

    # --- set-up and inspection ------------------------------------------------------------------

    def client(self) -> Client:
        """A real `twilio.rest.Client` whose requests all come here."""
        return Client(self.account_sid, self.auth_token, http_client=self)

    @property
    def message_count(self) -> int:
        with self._lock:
            return len(self.messages)

    def messages_to(self, number: str) -> list[FakeMessage]:
        with self._lock:
            return [message for message in self.messages if message.to == number]

    def get(self, sid: str) -> FakeMessage | None:
        with self._lock:
            return next((m for m in self.messages if m.sid == sid), None)

    def set_status(self, sid: str, status: str, *, error_code: int | None = None) -> None:
        with self._lock:
            message = self.get(sid)
            if message is None:
                raise KeyError(sid)
            message.status = status
            message.error_code = error_code

    def fail_next(
        self, count: int = 1, *, status: int = 500, code: int | None = None, message: str = ""
    ) -> None:
        with self._lock:
            for _ in range(count):
                self._failures.append(
                    _Failure("http", status, code, message or f"injected HTTP {status}")
                )

    def fail_network(self, count: int = 1) -> None:
        with self._lock:
            self._failures.extend(_Failure("network") for _ in range(count))

    def lose_responses(self, count: int = 1) -> None:
        with self._lock:
            self._failures.extend(_Failure("lost") for _ in range(count))

    def reject(self, number: str, *, code: int = 21610, status: int = 400) -> None:
        with self._lock:
            self._rejected[number] = (status, code)

    # --- the HTTP client interface ----------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        params: dict | None = None,
        data: dict | None = None,
        headers: dict | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        with self._lock:
            params, data = dict(params or {}), dict(data or {})
            self.requests.append(FakeRequest(method, url, params, data))
            failure = self._failures.pop(0) if self._failures else None
            if failure is not None and failure.kind == "network":
                raise requests.ConnectionError("injected: network unreachable")
            if failure is not None and failure.kind == "http":
                return _error(failure.status, failure.code or failure.status, failure.message)
            response = self._handle(method, url, params, data, auth)
            if failure is not None and failure.kind == "lost":
                raise requests.ConnectionError("injected: connection lost after Twilio accepted")
            return response

    def _handle(self, method, url, params, data, auth) -> Response:
        parts = urlsplit(url)
        match = _MESSAGES.match(parts.path)
        if parts.hostname != API_HOST or match is None:
            return _error(404, 20404, f"The requested resource {parts.path} was not found")
        if auth != (self.account_sid, self.auth_token) or match["account"] != self.account_sid:
            return _error(401, 20003, "Authenticate")
        sid = match["sid"]
        if method == "POST" and sid is None:
            return self._create(data)
        if method == "GET" and sid is not None:
            message = self.get(sid)
            if message is None:
                return _error(404, 20404, f"The requested resource {parts.path} was not found")
            return Response(200, json.dumps(message.as_json()))
        if method == "GET":
            return self._list(parts.path, params)
        return _error(405, 20004, "Method not allowed")

    def _create(self, data: dict) -> Response:
        to = str(data.get("To", ""))
        body = str(data.get("Body", ""))
        from_ = data.get("From")
        service = data.get("MessagingServiceSid")
        if not _E164.match(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if not from_ and not service:
            return _error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.")
        if to in self._rejected:
            status, code = self._rejected[to]
            return _error(status, code, f"Message to {to} refused (injected code {code}).")
        message = FakeMessage(
            sid="SM" + secrets.token_hex(16),
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            messaging_service_sid=service,
            body=body,
            status="accepted" if service else "queued",
            status_callback=data.get("StatusCallback"),
            created_at=self._now(),
        )
        self.messages.append(message)
        if self.on_create is not None:
            self.on_create(message)
        return Response(201, json.dumps(message.as_json()))

    def _list(self, path: str, params: dict) -> Response:
        found = [
            message.as_json()
            for message in reversed(self.messages)
            if params.get("To") in (None, message.to)
            and params.get("From") in (None, message.from_)
        ]
        size = int(params.get("PageSize", 50))
        page = {
            "messages": found[:size],
            "page": 0,
            "page_size": size,
            "first_page_uri": path,
            "next_page_uri": None,
            "previous_page_uri": None,
            "uri": path,
            "start": 0,
            "end": max(0, min(size, len(found)) - 1),
        }
        return Response(200, json.dumps(page))

    def _now(self) -> datetime:
        return self.clock.now() if self.clock is not None else datetime.now(UTC)


def _error(status: int, code: int, message: str) -> Response:
    payload = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Response(status, json.dumps(payload))
