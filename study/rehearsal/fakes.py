"""Local stand-ins for the outside world, so a rehearsal reaches no network and no one.

- `SmsGateway`: the `twilio` library's pluggable HTTP client answering the Messages API
  (create, fetch, list) and recording every message; the real `TwilioSms` channel and the real
  `twilio.rest.Client` run on top of it. It is a recorder, not a test double with failure
  injection: the test suite's tests/fakes/twilio.py (`FakeTwilio`) does that, and the rehearsal
  accepts either (anything with `.messages` of objects with `sid`, `to`, `body`).
- `MailSink`: a real SMTP server (aiosmtpd) on the loopback interface that keeps every mail.
- `LocalAssistant`: a real HTTP server speaking the OpenAI chat-completions protocol on the
  loopback interface; it answers every message with a short fixed-form reply.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from aiosmtpd.controller import Controller
from twilio.http import HttpClient
from twilio.http.response import Response

_MESSAGES = re.compile(
    r"^/2010-04-01/Accounts/(?P<account>AC\w+)/Messages(?:/(?P<sid>\w+))?\.json$"
)


@dataclass
class SentSms:
    sid: str
    to: str
    from_: str
    body: str
    created_at: datetime

    def as_json(self, account: str) -> dict:
        created = format_datetime(self.created_at, usegmt=True)
        return {
            "sid": self.sid,
            "account_sid": account,
            "to": self.to,
            "from": self.from_,
            "body": self.body,
            "status": "queued",
            "direction": "outbound-api",
            "date_created": created,
            "date_updated": created,
            "num_segments": "1",
            "uri": f"/2010-04-01/Accounts/{account}/Messages/{self.sid}.json",
        }


class SmsGateway(HttpClient):
    """Accepts every well-formed message for `account_sid` and keeps it (thread-safe)."""

    def __init__(self, account_sid: str, auth_token: str, clock=None) -> None:
        super().__init__(logging.getLogger("flourish.rehearsal.sms"), is_async=False)
        self.account_sid, self.auth_token, self.clock = account_sid, auth_token, clock
        self.messages: list[SentSms] = []
        self._lock = threading.Lock()

    def request(
        self,
        method,
        url,
        params=None,
        data=None,
        headers=None,
        auth=None,
        timeout=None,
        allow_redirects=False,
    ) -> Response:
        match = _MESSAGES.match(urlsplit(url).path)
        if match is None or auth != (self.account_sid, self.auth_token):
            return _error(401 if match else 404, 20003 if match else 20404)
        with self._lock:
            if method == "POST" and match["sid"] is None:
                data = data or {}
                if not data.get("To") or not data.get("Body"):
                    return _error(400, 21602)
                now = self.clock.now() if self.clock else datetime.now(UTC)
                sms = SentSms(
                    "SM" + secrets.token_hex(16),
                    data["To"],
                    data.get("From", ""),
                    data["Body"],
                    now,
                )
                self.messages.append(sms)
                return Response(201, json.dumps(sms.as_json(self.account_sid)))
            if method == "GET" and match["sid"]:
                found = next((m for m in self.messages if m.sid == match["sid"]), None)
                if found is None:
                    return _error(404, 20404)
                return Response(200, json.dumps(found.as_json(self.account_sid)))
            to = (params or {}).get("To")
            listed = [
                m.as_json(self.account_sid) for m in reversed(self.messages) if to in (None, m.to)
            ]
            page = {
                "messages": listed,
                "page": 0,
                "page_size": len(listed) or 50,
                "next_page_uri": None,
                "uri": urlsplit(url).path,
            }
            return Response(200, json.dumps(page))


def _error(status: int, code: int) -> Response:
    return Response(status, json.dumps({"code": code, "message": "refused", "status": status}))


@dataclass(frozen=True)
class Mail:
    to: tuple[str, ...]
    subject: str
    body: str
    message_id: str


class MailSink:
    """An SMTP server on 127.0.0.1 that keeps every message; use as a context manager."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self._lock = threading.Lock()
        with socket.socket() as probe:  # aiosmtpd checks readiness by connecting: no port 0
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self._controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_DATA(self, server, session, envelope) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        part = parsed.get_body(preferencelist=("plain", "html"))
        mail = Mail(
            tuple(envelope.rcpt_tos),
            str(parsed["Subject"] or ""),
            part.get_content() if part is not None else "",
            str(parsed["Message-ID"] or ""),
        )
        with self._lock:
            self.mails.append(mail)
        return "250 OK"

    @property
    def port(self) -> int:
        return self._controller.port

    def __enter__(self) -> MailSink:
        self._controller.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._controller.stop()


class LocalAssistant:
    """An OpenAI-compatible endpoint on 127.0.0.1 (streaming and not); use as a context manager.

    Every reply is `"Thank you for telling me. You wrote <n> words."`, so the rehearsal can tell
    a stored reply from a lost one without a model.
    """

    def __init__(self, model: str = "rehearsal-model") -> None:
        self.model = model
        self.requests = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _assistant_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def answer(self, body: dict) -> str:
        with self._lock:
            self.requests += 1
        users = [m for m in body.get("messages", []) if m.get("role") == "user"]
        words = len(str(users[-1].get("content", "")).split()) if users else 0
        return f"Thank you for telling me. You wrote {words} words."

    def __enter__(self) -> LocalAssistant:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _assistant_handler(assistant: LocalAssistant):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._json(200, {"object": "list", "data": [{"id": assistant.model}]})

        def do_POST(self) -> None:
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._json(404, {"error": {"message": "not found"}})
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            text = assistant.answer(body)
            usage = {
                "prompt_tokens": 20,
                "completion_tokens": len(text.split()),
                "total_tokens": 20 + len(text.split()),
            }
            if not body.get("stream"):
                self._json(
                    200,
                    {
                        "id": "chatcmpl-" + secrets.token_hex(8),
                        "object": "chat.completion",
                        "model": assistant.model,
                        "usage": usage,
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": text},
                            }
                        ],
                    },
                )
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            chunk = {
                "object": "chat.completion.chunk",
                "model": assistant.model,
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}}],
            }
            last = {
                "object": "chat.completion.chunk",
                "model": assistant.model,
                "usage": usage,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            for event in (chunk, last):
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")

        def _json(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    return Handler
