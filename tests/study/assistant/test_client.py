"""The chat-completions client against a real local HTTP server speaking the OpenAI protocol."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from study.assistant.client import (
    AssistantNotConfigured,
    ChatClient,
    ChatRequest,
    ProviderError,
    ProviderTimeout,
    ProviderUnreachable,
    RateLimited,
    retry_after_seconds,
)
from study.protocol.schema import Assistant
from tests.fakes.openai_server import TEST_API_KEY, FakeOpenAI

REQUEST = ChatRequest(
    model="llama-3.1-8b-instruct",
    messages=({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}),
    temperature=0.7,
    top_p=0.95,
    max_tokens=800,
    seed=20260302,
)


@pytest.fixture
def client(openai_server):
    return ChatClient(openai_server.base_url, TEST_API_KEY, timeout=5)


def test_a_whole_reply_comes_back_with_its_token_counts_and_model(client, openai_server):
    openai_server.reply("Hello! How can I help?", prompt_tokens=21, completion_tokens=6)
    completion = client.complete(REQUEST)
    assert completion.text == "Hello! How can I help?"
    assert (completion.prompt_tokens, completion.completion_tokens) == (21, 6)
    assert completion.model == "llama-3.1-8b-instruct"
    assert completion.finish_reason == "stop"
    assert completion.latency_ms >= 0


def test_the_request_carries_the_key_messages_and_every_generation_parameter(
    client, openai_server
):
    client.complete(REQUEST)
    (received,) = openai_server.requests
    assert received.path == "/v1/chat/completions"
    assert received.headers["Authorization"] == f"Bearer {TEST_API_KEY}"
    assert received.body == {
        "model": "llama-3.1-8b-instruct",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi there"},
        ],
        "temperature": 0.7,
        "top_p": 0.95,
        "max_tokens": 800,
        "seed": 20260302,
        "stream": False,
    }


def test_a_streamed_reply_arrives_piece_by_piece_and_ends_with_usage(client, openai_server):
    openai_server.reply("One two three", chunks=["One", " two", " three"], completion_tokens=3)
    stream = client.stream(REQUEST)
    assert stream.completion is None
    pieces = list(stream)
    assert pieces == ["One", " two", " three"]
    assert stream.completion.text == "One two three"
    assert stream.completion.completion_tokens == 3
    assert openai_server.requests[0].body["stream"] is True
    assert openai_server.requests[0].body["stream_options"] == {"include_usage": True}


def test_a_stream_without_usage_gives_no_token_counts_rather_than_guesses(client, openai_server):
    openai_server.reply("No counts here", usage=False)
    stream = client.stream(REQUEST)
    assert "".join(stream) == "No counts here"
    assert stream.completion.prompt_tokens is None
    assert stream.completion.completion_tokens is None


def test_a_server_error_is_a_provider_error_with_its_status(client, openai_server):
    openai_server.fail(500, "model crashed")
    with pytest.raises(ProviderError, match="HTTP 500: model crashed") as caught:
        client.complete(REQUEST)
    assert caught.value.status == 500 and caught.value.kind == "provider"


def test_a_server_error_while_streaming_is_raised_on_iteration(client, openai_server):
    openai_server.fail(503, "overloaded")
    stream = client.stream(REQUEST)
    with pytest.raises(ProviderError, match="HTTP 503"):
        list(stream)
    assert stream.completion is None


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_rate_limit_says_how_long_to_wait(client, openai_server, stream):
    openai_server.fail(429, retry_after="7")
    with pytest.raises(RateLimited) as caught:
        list(client.stream(REQUEST)) if stream else client.complete(REQUEST)
    assert caught.value.retry_after == 7.0
    assert caught.value.status == 429 and caught.value.kind == "rate_limited"


def test_a_wrong_key_is_a_provider_error_and_the_key_is_not_in_the_message(openai_server):
    client = ChatClient(openai_server.base_url, "sk-wrong-secret", timeout=5)
    with pytest.raises(ProviderError) as caught:
        client.complete(REQUEST)
    assert caught.value.status == 401
    assert "sk-wrong-secret" not in str(caught.value)


def test_a_slow_reply_times_out(openai_server):
    openai_server.stall(5)
    client = ChatClient(openai_server.base_url, TEST_API_KEY, timeout=0.3)
    with pytest.raises(ProviderTimeout):
        client.complete(REQUEST)


def test_a_stream_that_goes_quiet_midway_times_out_after_the_first_pieces(openai_server):
    openai_server.stall(5, after_chunks=1, text="First then silence")
    client = ChatClient(openai_server.base_url, TEST_API_KEY, timeout=0.3)
    pieces = []
    with pytest.raises(ProviderTimeout):
        for piece in client.stream(REQUEST):
            pieces.append(piece)
    assert pieces == ["First"]


def test_an_endpoint_nobody_listens_on_is_unreachable():
    server = FakeOpenAI()
    url = server.base_url
    server.stop()  # the port was bound and released: nothing listens there now
    with pytest.raises(ProviderUnreachable):
        ChatClient(url, "k", timeout=2).complete(REQUEST)


def test_the_key_is_read_from_the_variable_the_protocol_names():
    assistant = Assistant(
        provider="openai-compatible",
        base_url="http://127.0.0.1:8089/v1",
        model="m",
        api_key_env="FLOURISH_ARM_X_API_KEY",
        system_prompt_file="prompt.md",
    )
    with pytest.raises(AssistantNotConfigured, match="FLOURISH_ARM_X_API_KEY"):
        ChatClient.for_assistant(assistant, {})
    client = ChatClient.for_assistant(assistant, {"FLOURISH_ARM_X_API_KEY": "k"})
    assert client.url == "http://127.0.0.1:8089/v1/chat/completions"


def test_retry_after_accepts_seconds_and_http_dates():
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert retry_after_seconds("12", now) == 12.0
    assert retry_after_seconds("Mon, 02 Mar 2026 09:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Mon, 02 Mar 2026 08:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None
