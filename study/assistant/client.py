"""A client for OpenAI-compatible chat-completions endpoints (vLLM, llama.cpp, Ollama, hosted).

One request at a time, streaming (server-sent events, `data:` lines) or not. Every way a call can
fail becomes one of the typed errors below, so the chat page can tell the participant what
happened in plain words and keep their message for a retry. The key is read from the environment
variable the protocol names; it never appears in the protocol, the database or an error message.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from ..protocol.schema import Assistant

DEFAULT_TIMEOUT = 60.0  # seconds allowed between bytes of a reply (local models can be slow)
CONNECT_TIMEOUT = 5.0


class AssistantError(Exception):
    """The assistant could not answer. `kind` names the failure for logs and the chat page."""

    kind = "error"


class AssistantNotConfigured(AssistantError):
    """The arm's key variable is not set on this server: an operator must fix it."""

    kind = "not_configured"


class ProviderTimeout(AssistantError):
    """The endpoint took longer than the timeout to connect, answer or send the next chunk."""

    kind = "timeout"


class ProviderUnreachable(AssistantError):
    """The endpoint refused the connection or the network failed."""

    kind = "unreachable"


class ProviderError(AssistantError):
    """The endpoint answered with an HTTP error (4xx other than 429, or 5xx) or nonsense."""

    kind = "provider"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RateLimited(ProviderError):
    """HTTP 429. `retry_after` is the number of seconds the endpoint asked us to wait, if any."""

    kind = "rate_limited"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, 429)
        self.retry_after = retry_after


@dataclass(frozen=True)
class ChatRequest:
    """What is sent: the messages and the arm's generation parameters."""

    model: str
    messages: tuple[Mapping[str, str], ...]
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int | None = None

    def payload(self, *, stream: bool) -> dict:
        body = {
            "model": self.model,
            "messages": [dict(message) for message in self.messages],
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "stream": stream,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        if stream:
            # Ask for token counts in the last chunk; servers that do not know it ignore it.
            body["stream_options"] = {"include_usage": True}
        return body


@dataclass
class Completion:
    """A finished reply with what the log needs. Token counts are None if the server gave none."""

    text: str
    model: str
    latency_ms: int
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None


@dataclass
class CompletionStream:
    """Iterate for the reply's text pieces as they arrive; `completion` is set when it ends."""

    _pieces: Iterator[str]
    completion: Completion | None = field(default=None, init=False)

    def __iter__(self) -> Iterator[str]:
        return self._pieces


class ChatClient:
    """Talks to one endpoint. Build it per request (`for_assistant`); it holds no state."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT))
        self._transport = transport

    @classmethod
    def for_assistant(
        cls, assistant: Assistant, environ: Mapping[str, str], *, timeout: float = DEFAULT_TIMEOUT
    ) -> ChatClient:
        """A client for an arm's endpoint with the key from `environ[assistant.api_key_env]`."""
        key = environ.get(assistant.api_key_env, "")
        if not key:
            raise AssistantNotConfigured(
                f"environment variable {assistant.api_key_env} (the assistant's API key) is not set"
            )
        return cls(str(assistant.base_url), key, timeout=timeout)

    def _client(self) -> httpx.Client:
        return httpx.Client(
            timeout=self._timeout,
            transport=self._transport,
            headers={"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"},
        )

    def complete(self, request: ChatRequest) -> Completion:
        """The whole reply in one response."""
        started = time.monotonic()
        with _translated_errors(), self._client() as http:
            response = http.post(self.url, json=request.payload(stream=False))
            _raise_for_status(response)
            try:
                body = response.json()
                choice = body["choices"][0]
                text = choice["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                raise ProviderError("the endpoint's reply is not a chat completion") from exc
        usage = body.get("usage") or {}
        return Completion(
            text=text,
            model=str(body.get("model") or request.model),
            latency_ms=_elapsed_ms(started),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason=choice.get("finish_reason"),
        )

    def stream(self, request: ChatRequest) -> CompletionStream:
        """The reply piece by piece. Errors are raised while iterating; `latency_ms` runs to the
        last piece. Nothing is sent until iteration starts."""
        holder = CompletionStream(iter(()))
        holder._pieces = self._stream_pieces(request, holder)
        return holder

    def _stream_pieces(self, request: ChatRequest, holder: CompletionStream) -> Iterator[str]:
        started = time.monotonic()
        text: list[str] = []
        model, usage, finish = request.model, {}, None
        with _translated_errors(), self._client() as http:
            payload = request.payload(stream=True)
            with http.stream("POST", self.url, json=payload) as response:
                if response.is_error:
                    response.read()
                    _raise_for_status(response)
                for event in _sse_data(response.iter_lines()):
                    if event == "[DONE]":
                        break
                    try:
                        chunk = json.loads(event)
                    except ValueError as exc:
                        raise ProviderError("the endpoint sent a malformed stream chunk") from exc
                    if "error" in chunk:
                        raise ProviderError(f"the endpoint reported an error: {chunk['error']}")
                    model = chunk.get("model") or model
                    usage = chunk.get("usage") or usage
                    for choice in chunk.get("choices") or []:
                        finish = choice.get("finish_reason") or finish
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            text.append(piece)
                            yield piece
        holder.completion = Completion(
            text="".join(text),
            model=str(model),
            latency_ms=_elapsed_ms(started),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason=finish,
        )


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The data of each server-sent event (multi-line data joined by newlines)."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        # Comments (": keep-alive"), `event:` and `id:` lines carry nothing we use.
    if data:
        yield "\n".join(data)


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Turns httpx's exceptions into ours, so callers handle one family of errors."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise ProviderTimeout("the assistant did not answer in time") from exc
    except httpx.TransportError as exc:
        raise ProviderUnreachable(f"cannot reach the assistant: {type(exc).__name__}") from exc


def _raise_for_status(response: httpx.Response) -> None:
    if not response.is_error:
        return
    detail = _error_detail(response)
    if response.status_code == 429:
        raise RateLimited(
            f"rate limited by the endpoint: {detail}",
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    raise ProviderError(f"the endpoint answered HTTP {response.status_code}: {detail}",
                        response.status_code)


def _error_detail(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    return str(message or response.text or response.reason_phrase)[:300]


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
