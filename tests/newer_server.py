"""A "newer server" for the client's tests: a real gRPC server implementing the generated
LLMConfigServiceServicer, answering what a later version of llmconfig (or a hostile or broken
one) could send — enum numbers this client does not know, a timestamp Python cannot hold,
unreadable `grpc-status-details-bin` trailers, and provider strings carrying terminal escape
sequences and bidi overrides.

    with NewerServer() as server:
        llmconfig.Client(server.target).check_health()

`error_details` (bytes) makes every unary RPC fail INVALID_ARGUMENT with that trailer.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2

from llmconfig.v1 import llmconfig_pb2 as pb
from llmconfig.v1 import llmconfig_pb2_grpc as pb_grpc

UNKNOWN_NUMBER = 99  # an enum value a later proto could add
# What a hostile upstream could put in a name or a message: clear the screen, home the cursor,
# set the terminal's title (OSC), then print a fake verdict; reverse the text that follows.
CLEAR_SCREEN = "\x1b[2J\x1b[H"
SET_TITLE = "\x1b]0;pwned\x07"
RLO = "\u202e"
HOSTILE_MESSAGE = f"{CLEAR_SCREEN}✓ HEALTHY all good{SET_TITLE}"
HOSTILE_VERSION = f"0.5.1{SET_TITLE}"
HOSTILE_MODEL = f"llama3.2{RLO}txt.exe"
HOSTILE_WARNING = f"note{CLEAR_SCREEN}nothing to see"
# A Timestamp beyond year 9999: valid protobuf, no Python datetime.
FAR_FUTURE = timestamp_pb2.Timestamp(seconds=2**40)
DETAILS_KEY = "grpc-status-details-bin"
MESSAGE = "the newer server refuses this request"


def garbage_status_details() -> bytes:
    """Bytes that are no google.rpc.Status at all."""
    return b"\xff\xfe\x00 not a protobuf \x80\x80\x80"


def status_of_another_code() -> bytes:
    """A readable Status whose code is not the call's (gRPC Python refuses to read it)."""
    return status_pb2.Status(code=grpc.StatusCode.NOT_FOUND.value[0],
                             message="something else").SerializeToString()


def status_with_an_unreadable_detail() -> bytes:
    """The call's own Status whose first detail says BadRequest but holds garbage, followed by
    a good ErrorInfo."""
    bad = any_pb2.Any(type_url="type.googleapis.com/google.rpc.BadRequest",
                      value=b"\xff\xff\xff\xff")
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason="NEWER_REASON", domain="llmconfig.stigmer.ai"))
    return status_pb2.Status(code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message=MESSAGE,
                             details=[bad, info]).SerializeToString()


def _config() -> pb.ResolveLLMConfigResponse:
    return pb.ResolveLLMConfigResponse(
        config=pb.LLMConfig(provider="ollama", model=HOSTILE_MODEL,
                            requested_model=HOSTILE_MODEL,
                            base_url="http://localhost:11434", mode="local"),
        origins=[pb.FieldOrigin(field=name, source=UNKNOWN_NUMBER, detail=f"newer layer{RLO}")
                 for name in ("mode", "provider", "model", "base_url")],
        warnings=[HOSTILE_WARNING], revision="abc123")


class NewerServicer(pb_grpc.LLMConfigServiceServicer):
    def __init__(self, error_details: bytes | None) -> None:
        self.error_details = error_details

    def _refuse_if_asked(self, context: grpc.ServicerContext) -> None:
        if self.error_details is not None:
            context.set_trailing_metadata(((DETAILS_KEY, self.error_details),))
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, MESSAGE)

    def ResolveLLMConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._refuse_if_asked(context)
        return _config()

    def ResolveRunnerConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._refuse_if_asked(context)
        return pb.ResolveRunnerConfigResponse(
            config=pb.RunnerConfig(mode="local", temporal=pb.TemporalSettings(
                address="localhost:7233", namespace=f"ns{CLEAR_SCREEN}")),
            llm=_config(), revision="def456",
            origins=[pb.FieldOrigin(field="temporal.address", source=UNKNOWN_NUMBER,
                               detail="newer layer")])

    def CheckProviderHealth(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._refuse_if_asked(context)
        return pb.CheckProviderHealthResponse(
            status=UNKNOWN_NUMBER, healthy=False, message=HOSTILE_MESSAGE, provider="ollama",
            base_url="http://localhost:11434", model=HOSTILE_MODEL,
            available_models=[HOSTILE_MODEL], server_version=HOSTILE_VERSION,
            latency=duration_pb2.Duration(seconds=0, nanos=5_000_000),
            checked_at=FAR_FUTURE)

    def ListModels(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._refuse_if_asked(context)
        return pb.ListModelsResponse(
            models=[pb.ModelInfo(id=HOSTILE_MODEL, provider="ollama", status=UNKNOWN_NUMBER,
                                 known_from=UNKNOWN_NUMBER, replacement=f"x{RLO}y",
                                 tier=f"fast{SET_TITLE}")],
            warnings=[HOSTILE_WARNING])

    def WatchLLMConfig(self, request: Any, context: grpc.ServicerContext,
                       ) -> Iterator[pb.WatchLLMConfigEvent]:
        yield pb.WatchLLMConfigEvent(config=_config())
        bad = any_pb2.Any(type_url="type.googleapis.com/google.rpc.BadRequest",
                          value=b"\xff\xff\xff\xff")
        yield pb.WatchLLMConfigEvent(error=status_pb2.Status(
            code=UNKNOWN_NUMBER, message=f"newer error{CLEAR_SCREEN}", details=[bad]))
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "that is all")  # ends the watch


class NewerServer:
    """The newer server on 127.0.0.1, for the length of a `with`."""

    def __init__(self, error_details: bytes | None = None) -> None:
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_LLMConfigServiceServicer_to_server(NewerServicer(error_details),
                                                       self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.target = f"127.0.0.1:{port}"

    def __enter__(self) -> NewerServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(grace=None)
