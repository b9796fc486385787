"""A runner's chat model really talks: the LangChain models `llmconfig.chat_model()` builds
are invoked against loopback servers speaking each provider's chat API, and what every request
carried — path, model, key — is checked."""

from __future__ import annotations

import pytest
from chat_servers import REPLY, ChatServer

import llmconfig

from conftest import ANTHROPIC_KEY, OPENAI_KEY, TRUST_LOOPBACK


@pytest.fixture
def chat(emulators) -> ChatServer:
    server = ChatServer()
    emulators.append(server)
    return server


def test_ollama_native_chat_goes_to_api_chat_with_the_resolved_model(serve, chat):
    client = serve(env={"OLLAMA_BASE_URL": chat.url})
    model = llmconfig.chat_model(target=client.target, model="llama3.2")
    assert model.invoke("hello").content == REPLY
    (request,) = chat.received
    assert (request.method, request.path) == ("POST", "/api/chat")
    assert request.body["model"] == "llama3.2:3b"
    assert "authorization" not in request.headers


def test_ollama_openai_compatible_chat_goes_to_v1(serve, chat):
    client = serve(env={"OLLAMA_BASE_URL": chat.url})
    model = llmconfig.chat_model(target=client.target, openai_compatible=True)
    assert model.invoke("hello").content == REPLY
    (request,) = chat.received
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "qwen2.5-coder:7b"


def test_anthropic_chat_carries_the_key_and_the_canonical_model(serve, chat):
    client = serve(args=[TRUST_LOOPBACK],
                   env={"ANTHROPIC_BASE_URL": chat.url, "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
                        "MODE": "cloud"})
    model = llmconfig.chat_model(target=client.target)
    assert model.invoke("hello").content == REPLY
    (request,) = chat.received
    assert request.path == "/v1/messages"
    assert request.body["model"] == "claude-sonnet-5-5"
    assert request.body["max_tokens"] == 20000
    # SDKs send the key as x-api-key (older) or Authorization: Bearer (newer); either is it.
    sent = request.headers.get("x-api-key") or \
        request.headers.get("authorization", "").removeprefix("Bearer ")
    assert sent == ANTHROPIC_KEY


def test_openai_chat_carries_the_bearer_key(serve, chat):
    client = serve(args=[TRUST_LOOPBACK],
                   env={"OPENAI_BASE_URL": f"{chat.url}/v1", "OPENAI_API_KEY": OPENAI_KEY,
                        "STIGMER_LLM_PROVIDER": "openai"})
    model = llmconfig.chat_model(target=client.target, temperature=0.5)
    assert model.invoke("hello").content == REPLY
    (request,) = chat.received
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "gpt-6-luna"
    assert request.body["temperature"] == 0.5
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"


def test_the_anthropic_test_server_accepts_what_the_real_sdk_sends(emulators):
    import anthropic

    import providers

    server = providers.anthropic(ANTHROPIC_KEY)
    emulators.append(server)
    sdk = anthropic.Anthropic(api_key=ANTHROPIC_KEY, base_url=server.url, max_retries=0)
    assert sdk.models.retrieve("claude-sonnet-5-5").id == "claude-sonnet-5-5"
