"""Code around every RPC handler, for every kind of handler: the one mechanism behind the
cross-cutting concerns (access and metrics).

A `Layer` is asked once per method, when the method's service is registered, whether it wants
to see that method's calls. If it does, it gives a `start(context)` run at the start of each
call, which returns an `Observer` (told of each message received and sent, and of the call's
final code), a `grpc.Status` that refuses the call before the handler runs, or None.

Each handler is wrapped once, when registered: a per-call interceptor would add a coroutine and
an await to every call. All layers share that one wrapper, and every wrapper is a coroutine:
- a unary response: the handler is awaited;
- a streamed response: the wrapper iterates the handler's async generator and writes each
  message itself, or awaits a handler that writes on its own (through a context that counts).
  A client's cancel then reaches the wrapper as CancelledError at once, and the handler's
  generator is closed there and then — not later by the garbage collector, whose
  GeneratorExit used to be counted as Unknown;
- streamed requests reach the handler through an iterator that counts them;
- a sync handler (the generated stubs a servicer inherits are sync) runs in the loop's default
  executor, as grpc.aio runs it unwrapped.

`WrappingServer` is a `grpc.aio.Server` — libraries that check what kind of server they are
given (grpcio-reflection does) see the truth — that wraps every handler registered through it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeAlias

import grpc

_Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

KINDS: Final = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
_FACTORIES: Final = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


@dataclass(frozen=True, slots=True)
class Method:
    """One RPC as the server registers it: `/grpc.health.v1.Health/Watch` is service
    `grpc.health.v1.Health`, name `Watch`, kind `unary_stream`."""

    path: str
    service: str
    name: str
    kind: str

    @classmethod
    def of(cls, path: str, handler: grpc.RpcMethodHandler) -> Method:
        service, _, name = path.lstrip("/").partition("/")
        return cls(path, service, name, kind_of(handler))


class Observer:
    """What a layer hears about one call. Subclasses override what they need."""

    __slots__ = ()

    def received(self) -> None:
        """A request message arrived (once for a unary request)."""

    def sent(self) -> None:
        """A response message went out (once for a unary answer that is OK)."""

    def finished(self, code: grpc.StatusCode) -> None:
        """The call ended with `code` (CANCELLED when the client went away)."""


Start: TypeAlias = Callable[[Any], "Observer | grpc.Status | None"]


class Layer(Protocol):
    def __call__(self, method: Method) -> Start | None:
        """The start of each call of `method`, or None to leave the method alone."""


def kind_of(handler: grpc.RpcMethodHandler) -> str:
    return next(kind for kind in KINDS if getattr(handler, kind) is not None)


def wrap_handler(handler: grpc.RpcMethodHandler, path: str,
                 layers: Sequence[Layer]) -> grpc.RpcMethodHandler:
    """`handler` with `layers` around it (outermost first), or `handler` itself when no layer
    wants its method."""
    method = Method.of(path, handler)
    starts = tuple(start for layer in layers if (start := layer(method)) is not None)
    if not starts:
        return handler
    inner = getattr(handler, method.kind)
    streams_in, streams_out = method.kind.startswith("stream_"), method.kind.endswith("_stream")
    generator = inspect.isasyncgenfunction(inner)
    if not (generator or inspect.iscoroutinefunction(inner)):  # a sync handler
        inner = _in_threads(inner, streams_out)
        generator = streams_out
        if not streams_out:
            inner = _first(inner)
    behaviour: Any
    if not streams_out:
        async def unary_response(request: Any, context: _Context) -> Any:
            observers, refusal = _begin(starts, context, streams_in)
            if refusal is not None:
                await _refuse(context, refusal, observers)
            error: BaseException | None = None
            try:
                if streams_in:
                    request = _counted(request, observers)
                return await inner(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                _finish(observers, context, error, unary_response=True)

        behaviour = unary_response
    else:
        async def streamed_response(request: Any, context: _Context) -> None:
            observers, refusal = _begin(starts, context, streams_in)
            if refusal is not None:
                await _refuse(context, refusal, observers)
            error: BaseException | None = None
            try:
                if streams_in:
                    request = _counted(request, observers)
                if generator:
                    await _write_all(inner(request, context), context, observers)
                else:  # it writes through the context itself
                    await inner(request, _CountingContext(context, observers))
            except BaseException as exc:
                error = exc
                raise
            finally:
                _finish(observers, context, error, unary_response=False)

        behaviour = streamed_response
    return _FACTORIES[method.kind](behaviour, request_deserializer=handler.request_deserializer,
                                   response_serializer=handler.response_serializer)


def _in_threads(inner: Callable[..., Any], streams_out: bool) -> Callable[..., Any]:
    """A sync handler as an async generator of its answers, run in the loop's default executor
    as grpc.aio runs sync handlers (with a context whose abort works from a thread). A sync
    handler of a streamed request gets a blocking iterator over the async one."""

    async def run(request: Any, context: _Context) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        if hasattr(request, "__aiter__"):
            request = _blocking(request, loop)
        sync = _SyncContext(context, loop)
        result = await loop.run_in_executor(None, inner, request, sync)
        if not streams_out:
            yield result
            return
        done = object()
        while (message := await loop.run_in_executor(None, next, result, done)) is not done:
            yield message

    return run


def _first(generate: Callable[..., Any]) -> Callable[..., Any]:
    async def call(request: Any, context: _Context) -> Any:
        async for message in generate(request, context):
            return message
        return None

    return call


def _blocking(requests: Any, loop: asyncio.AbstractEventLoop) -> Any:
    iterator = aiter(requests)
    while True:
        try:
            yield asyncio.run_coroutine_threadsafe(anext(iterator), loop).result()
        except StopAsyncIteration:
            return


class _SyncContext:
    """The call's aio context as a sync handler uses it, from a thread."""

    def __init__(self, context: _Context, loop: asyncio.AbstractEventLoop) -> None:
        self._context = context
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> None:
        asyncio.run_coroutine_threadsafe(
            self._context.abort(code, details, trailing_metadata), self._loop).result()

    def abort_with_status(self, status: grpc.Status) -> None:
        self.abort(status.code, status.details, status.trailing_metadata)

    def send_initial_metadata(self, metadata: Any) -> None:
        asyncio.run_coroutine_threadsafe(
            self._context.send_initial_metadata(metadata), self._loop).result()


class _WriteFailed(Exception):
    """The transport would not take a message: the client or the server ended the call."""


def _begin(starts: tuple[Start, ...], context: _Context, streams_in: bool,
           ) -> tuple[list[Observer], grpc.Status | None]:
    """Run each layer's start, outermost first, until one refuses the call. A plain function:
    the common case costs no extra coroutine."""
    observers: list[Observer] = []
    for start in starts:
        outcome = start(context)
        if isinstance(outcome, Observer):
            observers.append(outcome)
            if not streams_in:
                outcome.received()
        elif outcome is not None:
            return observers, outcome
    return observers, None


async def _refuse(context: _Context, status: grpc.Status, observers: list[Observer]) -> None:
    """End the call with `status` (AbortError) once the observers started so far know."""
    try:
        await context.abort(status.code, status.details, status.trailing_metadata)
    finally:
        _finish(observers, context, None, unary_response=False)


async def _write_all(responses: Any, context: _Context, observers: list[Observer]) -> None:
    try:
        async for message in responses:
            try:
                await context.write(message)
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as exc:  # the call is over underneath us (ExecuteBatchError, …)
                raise _WriteFailed(str(exc)) from exc
            for observer in observers:
                observer.sent()
    finally:
        await responses.aclose()  # now, so the handler's own cleanup runs with the call


def _finish(observers: list[Observer], context: _Context, error: BaseException | None,
            unary_response: bool) -> None:
    if not observers:
        return
    code = final_code(context, error)
    for observer in observers:
        if unary_response and code is grpc.StatusCode.OK:
            observer.sent()
        observer.finished(code)


def final_code(context: _Context, error: BaseException | None) -> grpc.StatusCode:
    """The status the call ended with, as the client sees it."""
    if isinstance(error, (asyncio.CancelledError, GeneratorExit, _WriteFailed)):
        return grpc.StatusCode.CANCELLED
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.OK if error is None else grpc.StatusCode.UNKNOWN


async def _counted(requests: AsyncIterator[Any], observers: list[Observer],
                   ) -> AsyncIterator[Any]:
    async for request in requests:
        for observer in observers:
            observer.received()
        yield request


class _CountingContext:
    """The call's context, telling the observers of each message written or read."""

    def __init__(self, context: _Context, observers: list[Observer]) -> None:
        self._context = context
        self._observers = observers

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    async def write(self, message: Any) -> None:
        await self._context.write(message)
        for observer in self._observers:
            observer.sent()

    async def read(self) -> Any:
        message = await self._context.read()
        if message is not grpc.aio.EOF:
            for observer in self._observers:
                observer.received()
        return message


class _WrappedGeneric(grpc.GenericRpcHandler):  # type: ignore[misc]
    """A generic handler whose handlers come out wrapped (each once, then remembered)."""

    def __init__(self, inner: grpc.GenericRpcHandler, layers: Sequence[Layer]) -> None:
        self.inner = inner
        self.layers = layers
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self.inner.service(details)
        if handler is None:
            return None
        cached = self._wrapped.get(details.method)
        if cached is None or cached[0] is not handler:
            cached = (handler, wrap_handler(handler, details.method, self.layers))
            if len(self._wrapped) < 256:  # the methods of a few services
                self._wrapped[details.method] = cached
        return cached[1]


class WrappingServer(grpc.aio.Server):  # type: ignore[misc]
    """`server`, with every handler registered through this object wrapped in `layers`."""

    def __init__(self, server: grpc.aio.Server, layers: Sequence[Layer]) -> None:
        self.server = server
        self.layers = tuple(layers)

    def add_generic_rpc_handlers(self, generic_rpc_handlers: Sequence[grpc.GenericRpcHandler],
                                 ) -> None:
        self.server.add_generic_rpc_handlers(
            tuple(_WrappedGeneric(generic, self.layers) for generic in generic_rpc_handlers))

    def add_registered_method_handlers(self, service_name: str,
                                       method_handlers: dict[str, grpc.RpcMethodHandler],
                                       ) -> None:
        self.server.add_registered_method_handlers(service_name, {
            name: wrap_handler(handler, f"/{service_name}/{name}", self.layers)
            for name, handler in method_handlers.items()})

    def add_insecure_port(self, address: str) -> int:
        return int(self.server.add_insecure_port(address))

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        return int(self.server.add_secure_port(address, server_credentials))

    async def start(self) -> None:
        await self.server.start()

    async def stop(self, grace: float | None) -> None:
        await self.server.stop(grace)

    async def wait_for_termination(self, timeout: float | None = None) -> bool:
        return bool(await self.server.wait_for_termination(timeout))
