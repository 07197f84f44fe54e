"""A real local HTTP server speaking the OpenAI chat-completions protocol, for tests and rehearsals.

It listens on a loopback port in a background thread and answers `POST /v1/chat/completions`
(streaming as server-sent events, or one JSON body) and `GET /v1/models`. Replies are scripted:
queue them with `reply`, `fail` or `stall`; with nothing queued it answers
`"You said: <last user message>"`. Every request received is recorded with its headers and body.

    with FakeOpenAI() as server:
        server.reply("Hello!", chunks=["Hel", "lo!"])
        server.fail(429, retry_after="3")
        ... point the client at server.base_url ...
        server.requests[0].body["messages"]
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Scripted:
    """One scripted answer. `delay` seconds pass before the headers; `chunk_delay` between
    streamed chunks; `stall_after` chunks are sent and then the stream goes quiet for `delay`."""

    text: str = ""
    chunks: list[str] | None = None
    status: int = 200
    error: str = ""
    retry_after: str | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    stall_after: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usage: bool = True


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: dict = field(default_factory=dict)

    @property
    def last_user_message(self) -> str:
        users = [m for m in self.body.get("messages", []) if m.get("role") == "user"]
        return users[-1]["content"] if users else ""


class FakeOpenAI:
    """The server. `api_key`, if given, is required as a Bearer token (401 otherwise)."""

    def __init__(self, *, api_key: str | None = None, model: str = "fake-model", port: int = 0):
        self.api_key = api_key
        self.model = model
        self.requests: list[Received] = []
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def start(self) -> FakeOpenAI:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes any scripted delay at once
        if self._thread is not None:
            self._server.shutdown()  # waits for serve_forever, so only once started
            self._thread.join(timeout=10)
        self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- scripting ----------------------------------------------------------------------------

    def reply(self, text: str, *, chunks: list[str] | None = None, **options) -> None:
        """Answer the next request with `text` (streamed as `chunks`, default word by word)."""
        self._push(Scripted(text=text, chunks=chunks, **options))

    def fail(self, status: int, error: str = "", *, retry_after: str | None = None, **options):
        """Answer the next request with an HTTP error (e.g. 500, or 429 with Retry-After)."""
        message = error or {429: "Rate limit reached", 500: "Internal error"}.get(status, "Error")
        self._push(Scripted(status=status, error=message, retry_after=retry_after, **options))

    def stall(self, seconds: float, *, after_chunks: int | None = None, text: str = "") -> None:
        """Answer the next request only after `seconds` (or go quiet mid-stream after
        `after_chunks` chunks): longer than a client's timeout, this is a timeout."""
        self._push(Scripted(text=text or "Sorry for the wait.", delay=seconds,
                            stall_after=after_chunks))

    def _push(self, scripted: Scripted) -> None:
        with self._lock:
            self._script.append(scripted)

    def _next(self, received: Received) -> Scripted:
        with self._lock:
            self.requests.append(received)
            if self._script:
                return self._script.popleft()
        return Scripted(text=f"You said: {received.last_user_message}")

    def wait(self, seconds: float) -> None:
        self._stopping.wait(seconds)


def _handler_for(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # a streamed body ends when the connection closes

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/v1/models":
                return self._json(404, {"error": {"message": "not found"}})
            self._json(200, {"object": "list", "data": [{"id": fake.model, "object": "model"}]})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return self._json(400, {"error": {"message": "body is not JSON"}})
            received = Received("POST", self.path, dict(self.headers.items()), body)
            if self.path.rstrip("/") != "/v1/chat/completions":
                fake.requests.append(received)
                return self._json(404, {"error": {"message": "not found"}})
            if fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                fake.requests.append(received)
                return self._json(401, {"error": {"message": "Invalid API key"}})
            scripted = fake._next(received)
            if scripted.stall_after is None and scripted.delay:
                fake.wait(scripted.delay)
            if scripted.status >= 400:
                headers = {"Retry-After": scripted.retry_after} if scripted.retry_after else {}
                return self._json(scripted.status, {"error": {"message": scripted.error}}, headers)
            if body.get("stream"):
                self._stream(scripted, body)
            else:
                self._json(200, self._completion(scripted, body))

        def _usage(self, scripted: Scripted, body: dict) -> dict:
            words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
            return {
                "prompt_tokens": scripted.prompt_tokens or words,
                "completion_tokens": scripted.completion_tokens or len(scripted.text.split()),
                "total_tokens": (scripted.prompt_tokens or words)
                + (scripted.completion_tokens or len(scripted.text.split())),
            }

        def _completion(self, scripted: Scripted, body: dict) -> dict:
            answer = {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model") or fake.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": scripted.text},
                        "finish_reason": "stop",
                    }
                ],
            }
            if scripted.usage:
                answer["usage"] = self._usage(scripted, body)
            return answer

        def _stream(self, scripted: Scripted, body: dict) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            model = body.get("model") or fake.model
            pieces = scripted.chunks
            if pieces is None:
                words = scripted.text.split(" ")
                pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
            base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model}
            self._event({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
            for number, piece in enumerate(pieces):
                if scripted.stall_after is not None and number == scripted.stall_after:
                    fake.wait(scripted.delay)
                if scripted.chunk_delay:
                    fake.wait(scripted.chunk_delay)
                delta = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                if not self._event({**base, "choices": [delta]}):
                    return
            self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if scripted.usage and (body.get("stream_options") or {}).get("include_usage"):
                self._event({**base, "choices": [], "usage": self._usage(scripted, body)})
            self._write(b"data: [DONE]\n\n")

        def _event(self, data: dict) -> bool:
            return self._write(f"data: {json.dumps(data)}\n\n".encode())

        def _write(self, raw: bytes) -> bool:
            try:
                self.wfile.write(raw)
                self.wfile.flush()
                return True
            except (BrokenPipeError, ConnectionResetError):
                return False  # the client gave up (e.g. its timeout): nothing more to send

        def _json(self, status: int, data: dict, headers: dict | None = None) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self._write(raw)

    return Handler



TEST_API_KEY = "test-key-for-the-fake-endpoint"


@pytest.fixture
def openai_server():
    """A started FakeOpenAI requiring TEST_API_KEY; import this fixture where it is needed."""
    with FakeOpenAI(api_key=TEST_API_KEY) as server:
        yield server


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.fakes.openai_server --port 8089 [--api-key K]`: serve until Ctrl-C, for
    rehearsing a study against the example protocol without a model."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args(argv)
    server = FakeOpenAI(api_key=args.api_key, port=args.port).start()
    print(f"fake chat-completions endpoint at {server.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
