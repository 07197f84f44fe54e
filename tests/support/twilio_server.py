"""The fake Twilio (tests/fakes/twilio.py) over HTTP, for dispatchers in other processes.

The in-process fake replaces only the `twilio` library's HTTP round trip. A scheduler running
as a subprocess cannot share that object, so the test serves it on a loopback port and the
subprocess uses `RemoteTwilio`, an `HttpClient` that forwards each round trip there. Counting,
failure injection and `on_create` stay in the test's process, on the same `FakeTwilio`:

    with TwilioServer(FakeTwilio()) as server:
        env["FLOURISH_TEST_TWILIO_URL"] = server.url   # read by tests.support.dispatcher
        ...
        server.fake.message_count

A network failure the fake injects (`fail_network`, `lose_responses`) travels back as HTTP 599
and is raised again in the subprocess as `requests.ConnectionError`, as the real client would.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import requests
from twilio.http import HttpClient
from twilio.http.response import Response

from tests.fakes.twilio import FakeTwilio

NETWORK_FAILURE = 599


class TwilioServer:
    """Serve `fake` on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self, fake: FakeTwilio) -> None:
        self.fake = fake
        handler = type("Handler", (_Handler,), {"fake": fake})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> TwilioServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTwilio

    def do_POST(self) -> None:
        call = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = tuple(call["auth"]) if call.get("auth") else None
        try:
            response = self.fake.request(
                call["method"], call["url"], params=call["params"], data=call["data"], auth=auth
            )
            status, text = response.status_code, response.text
        except requests.ConnectionError as exc:
            status, text = NETWORK_FAILURE, str(exc)
        body = json.dumps({"status": status, "text": text}).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the dispatcher was killed while waiting: nobody to answer

    def log_message(self, *args) -> None:
        pass


class RemoteTwilio(HttpClient):
    """The subprocess's side: every Twilio API round trip goes to a `TwilioServer`."""

    def __init__(self, server_url: str) -> None:
        super().__init__(logging.getLogger("tests.remote_twilio"), is_async=False)
        self.server_url = server_url

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
        call = {
            "method": method,
            "url": url,
            "params": {k: str(v) for k, v in (params or {}).items()},
            "data": {k: str(v) for k, v in (data or {}).items()},
            "auth": list(auth) if auth else None,
        }
        try:
            answer = httpx.post(self.server_url, json=call, timeout=60).json()
        except httpx.TransportError as exc:
            raise requests.ConnectionError(f"fake Twilio unreachable: {exc}") from exc
        if answer["status"] == NETWORK_FAILURE:
            raise requests.ConnectionError(answer["text"])
        return Response(answer["status"], answer["text"])
