"""Property tests against the real server process: hypothesis sends ResolveLLMConfig and
CheckProviderHealth requests with random fields (unicode, control characters, huge strings,
huge and non-finite numbers) and random bytes, and checks what must hold for every one:

- the status is a precise one, never INTERNAL or UNKNOWN;
- a canary key (and a canary URL password) is in no answer without include_secrets, and never
  in the server's log (which runs at debug level);
- a key reaches only a base URL resolved for its provider, on its model path: capturing HTTP
  servers on loopback stand in for every provider and for a stranger, and record what they get;
- the server's memory stays bounded.

Examples: 1,000 ResolveLLMConfig requests, 1,000 CheckProviderHealth requests and 400 random
byte strings sent to either method (under 10 s in all); derandomized, no example database, so
every run and CI sends the same requests.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmconfig.v1 import llmconfig_pb2 as pb

import providers
from conftest import ServerProcess
from providers import Emulator

ANTHROPIC_CANARY = "sk-ant-api03-CANARYanthropicCANARYkey-a1a1"
OPENAI_CANARY = "sk-proj-CANARYopenaiCANARYkeyCANARY-b2b2"
PASSWORD_CANARY = "PWcanary-c3c3"
# More of a secret than the hint shows (the prefix and the last 4 characters).
SECRETS = (ANTHROPIC_CANARY, OPENAI_CANARY, ANTHROPIC_CANARY[-12:], OPENAI_CANARY[-12:],
           PASSWORD_CANARY)
PRECISE = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT,
           grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED}
TRANSPORT_LIMIT = 64 * 1024  # a bigger request is RESOURCE_EXHAUSTED, by gRPC itself
MODEL_PATH = re.compile(r"/v1/models/[^/?#]+")
OLLAMA_PATHS = {"/api/version", "/api/tags"}
RSS_GROWTH_LIMIT_MIB = 64
SERVICE = "/llmconfig.v1.LLMConfigService/"
FUZZ = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@dataclass
class Fuzzed:
    server: ServerProcess
    channel: grpc.Channel
    anthropic: Emulator
    openai: Emulator
    ollama: Emulator
    stranger: Emulator  # configured for nothing; reachable only by --allow-any-probe-target
    baseline_rss_mib: int
    log_checked: int = 0

    @property
    def urls(self) -> dict[str, str]:
        return {"anthropic": self.anthropic.url, "openai": f"{self.openai.url}/v1",
                "ollama": self.ollama.url, "stranger": self.stranger.url}

    def call(self, method: str, raw: bytes) -> tuple[grpc.StatusCode, bytes]:
        """The status and everything the caller received: answer bytes, or message + details."""
        rpc = self.channel.unary_unary(SERVICE + method, request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)
        try:
            return grpc.StatusCode.OK, rpc(raw, timeout=10)
        except grpc.RpcError as exc:
            return exc.code(), (exc.details() or "").encode() + repr(
                exc.trailing_metadata()).encode()

    def rss_mib(self) -> int:
        status = Path(f"/proc/{self.server.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) // 1024  # type: ignore[union-attr]


def rss_growth(fuzzed: Fuzzed) -> int:
    return fuzzed.rss_mib() - fuzzed.baseline_rss_mib


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    home = tmp_path_factory.mktemp("fuzz-home")
    captures = [providers.capturing() for _ in range(4)]
    anthropic, openai, ollama, stranger = captures
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONUNBUFFERED": "1",
        "LANG": "C.UTF-8", "MODE": "cloud",
        "ANTHROPIC_API_KEY": ANTHROPIC_CANARY, "ANTHROPIC_BASE_URL": anthropic.url,
        "OPENAI_API_KEY": OPENAI_CANARY, "OPENAI_BASE_URL": f"{openai.url}/v1",
        "OLLAMA_BASE_URL": ollama.url.replace("http://", f"http://fuzz:{PASSWORD_CANARY}@"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmconfig_server", "--listen", "127.0.0.1:0",
         "--allow-any-probe-target", "--log-level", "debug", "--probe-timeout", "0.5",
         "--models-refresh-interval", "0"],
        cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    server = ServerProcess(proc)
    server.start_reader()
    server.target = server.wait_for(r"serving on (\S+)").group(1)
    channel = grpc.insecure_channel(server.target)
    fuzzed = Fuzzed(server, channel, anthropic, openai, ollama, stranger, 0)
    # Warm up (httpx, the probes) so the baseline is the server at work, not at rest.
    for provider in ("anthropic", "openai", "ollama"):
        fuzzed.call("CheckProviderHealth",
                    pb.CheckProviderHealthRequest(provider=provider).SerializeToString())
    fuzzed.baseline_rss_mib = fuzzed.rss_mib()
    yield fuzzed
    channel.close()
    proc.terminate()
    server.finish()
    for capture in captures:
        capture.stop()


# -- What must hold after every example ----------------------------------------------------------

def assert_no_secret_in(blob: bytes, where: str) -> None:
    for secret in SECRETS:
        assert secret.encode() not in blob, f"{secret[:12]}… in {where}"


def assert_keys_went_only_where_they_belong(fuzzed: Fuzzed) -> None:
    # The key each capture may receive (None: none), and on which paths.
    own = {id(fuzzed.anthropic): ANTHROPIC_CANARY, id(fuzzed.openai): OPENAI_CANARY}
    for capture in (fuzzed.anthropic, fuzzed.openai, fuzzed.ollama, fuzzed.stranger):
        for request in capture.requests:
            sent = " ".join(request.headers.get(h, "") for h in ("x-api-key", "authorization"))
            if sent.startswith("Basic "):
                sent = base64.b64decode(sent.removeprefix("Basic ")).decode(errors="replace")
            for secret in (ANTHROPIC_CANARY, OPENAI_CANARY):
                if secret in sent:
                    assert own.get(id(capture)) == secret, f"{secret[:12]}… sent to {request}"
                    assert MODEL_PATH.fullmatch(request.path), request
            if PASSWORD_CANARY in sent:
                assert capture is fuzzed.ollama, f"URL credentials sent to {request}"
            assert request.method == "GET", request
            assert MODEL_PATH.fullmatch(request.path) or request.path in OLLAMA_PATHS, request
        capture.requests.clear()


def assert_log_is_clean(fuzzed: Fuzzed) -> None:
    lines = fuzzed.server.lines[fuzzed.log_checked:]
    fuzzed.log_checked += len(lines)
    text = "\n".join(lines)
    assert_no_secret_in(text.encode(), "the server log")
    assert "Traceback" not in text and "failed unexpectedly" not in text, text[-2000:]


def check(fuzzed: Fuzzed, method: str, raw: bytes, *, secrets_allowed: bool = False) -> None:
    code, received = fuzzed.call(method, raw)
    precise = PRECISE | ({grpc.StatusCode.RESOURCE_EXHAUSTED} if len(raw) > TRANSPORT_LIMIT
                         else set())
    assert code in precise, (code, received[:500])
    if not secrets_allowed:
        assert_no_secret_in(received, f"the {method} answer")
    assert_keys_went_only_where_they_belong(fuzzed)
    assert_log_is_clean(fuzzed)


# -- Strategies ----------------------------------------------------------------------------------

# Any unicode (control characters included); sometimes very long (a request may then pass the
# transport's 64 KiB: RESOURCE_EXHAUSTED is precise for that, and only for that).
chars = st.characters(codec="utf-8")  # what protobuf strings can hold: no lone surrogates
texts = st.one_of(
    st.text(chars, max_size=40),
    st.text(chars, max_size=400),
    st.builds(lambda c, n: c * n, chars, st.integers(257, 20_000)),
)


def mostly(valid: st.SearchStrategy[object], wild: st.SearchStrategy[object],
           ) -> st.SearchStrategy[object]:
    """Four times in five a valid value, so many requests get past validation to the cascade
    and the probes; else anything."""
    # (one_of would pick the wild branch more often than not: hypothesis favours it.)
    return st.integers(0, 4).flatmap(lambda n: valid if n else wild)


providers_ = mostly(st.sampled_from(["anthropic", "openai", "ollama"]),
                    st.one_of(st.sampled_from(["", "ANTHROPIC", " ollama", "gemini"]), texts))
modes = mostly(st.sampled_from(["", "local", "cloud"]),
               st.one_of(st.sampled_from(["LOCAL", " cloud", "remote"]), texts))
models = mostly(
    st.sampled_from(["", "claude-sonnet-4.5", "claude-opus-4", "gpt-4o", "o3-mini",
                     "qwen2.5-coder:7b", "llama3.2", "fast", "powerful"]),
    st.one_of(st.sampled_from(["claude-x/../../../../admin?foo=bar", "..", ".", "anthropic:..",
                               "openai:../../x", "gpt-4o#frag", "claude-x%2F..%2Fadmin",
                               "ollama:../api/pull", "claude-\n", "gpt-4o\r\nX-Evil: 1"]),
              texts),
)
# Base URLs as templates: the captures' ports are known only once they run.
base_urls = mostly(
    st.sampled_from(["", "{anthropic}", "{openai}", "{ollama}", "{stranger}", "{stranger}/v1",
                     "{anthropic}/v1"]),
    st.one_of(st.sampled_from(["http://fuzz:x@127.0.0.1:1", "http://169.254.169.254",
                               "file:///etc/passwd", "http://[::1", "http://127.0.0.1:99999",
                               "{stranger}/x?y=z", "{anthropic}#f", " {openai} "]), texts),
)
numbers = mostly(st.integers(min_value=1, max_value=64_000),
                 st.integers(min_value=-(2**31), max_value=2**31 - 1))
temperatures = mostly(st.floats(min_value=0.0, max_value=1.0), st.floats())
keys = st.one_of(st.sampled_from([ANTHROPIC_CANARY, OPENAI_CANARY, "sk-ant-short"]), texts)


def filled(template: str, fuzzed: Fuzzed) -> str:
    for name, url in fuzzed.urls.items():
        template = template.replace("{" + name + "}", url)
    return template


@st.composite
def resolve_requests(draw: st.DrawFn) -> tuple[dict[str, object], str, bool]:
    fields: dict[str, object] = {}
    for name, strategy in (("provider", providers_), ("model", models),
                           ("base_url", base_urls), ("api_key", keys),
                           ("max_tokens", numbers), ("temperature", temperatures)):
        if draw(st.booleans()):
            fields[name] = draw(strategy)
    return fields, draw(modes), draw(st.booleans())


# -- The properties ------------------------------------------------------------------------------

@settings(FUZZ, max_examples=1000)
@given(request=resolve_requests())
def test_resolve_answers_are_precise_and_keep_secrets(fuzzed: Fuzzed, request) -> None:
    fields, mode, include_secrets = request
    if "base_url" in fields:
        fields["base_url"] = filled(str(fields["base_url"]), fuzzed)
    message = pb.ResolveLLMConfigRequest(mode=mode, overrides=pb.LLMSettings(**fields),
                                         include_secrets=include_secrets)
    check(fuzzed, "ResolveLLMConfig", message.SerializeToString(),
          secrets_allowed=include_secrets)
    assert rss_growth(fuzzed) < RSS_GROWTH_LIMIT_MIB


@settings(FUZZ, max_examples=1000)
@given(provider=providers_, base_url=base_urls, model=models, mode=modes,
       refresh=st.booleans())
def test_health_answers_are_precise_and_keys_stay_home(fuzzed: Fuzzed, provider: str,
                                                       base_url: str, model: str, mode: str,
                                                       refresh: bool) -> None:
    message = pb.CheckProviderHealthRequest(provider=provider, base_url=filled(base_url, fuzzed),
                                            model=model, mode=mode, refresh=refresh)
    check(fuzzed, "CheckProviderHealth", message.SerializeToString())
    assert rss_growth(fuzzed) < RSS_GROWTH_LIMIT_MIB


@settings(FUZZ, max_examples=400)
@given(method=st.sampled_from(["ResolveLLMConfig", "CheckProviderHealth"]),
       raw=st.one_of(st.binary(max_size=64), st.binary(max_size=4_000)))
def test_random_bytes_get_precise_statuses(fuzzed: Fuzzed, method: str, raw: bytes) -> None:
    # Random bytes may decode as a request that asks for secrets; what matters here is the
    # status, the log and where keys went.
    check(fuzzed, method, raw, secrets_allowed=True)


def test_the_server_stayed_small_and_quiet(fuzzed: Fuzzed) -> None:
    # After every property above (pytest runs a module's tests in order).
    time.sleep(0.2)  # the last log lines
    assert_log_is_clean(fuzzed)
    assert rss_growth(fuzzed) < RSS_GROWTH_LIMIT_MIB
    assert fuzzed.server.proc.poll() is None
