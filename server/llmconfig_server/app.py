"""Build and run the grpc.aio server: the service behind the access interceptor,
grpc.health.v1.Health, reflection, its listeners (TCP, TLS, Unix sockets), and a graceful stop
(NOT_SERVING first, then in-flight calls get the grace period)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from . import answers, reflection
from .access import Access, AccessInterceptor
from .admission import Admission
from .health import HealthOptions, ProviderHealth
from .listeners import (
    Listener,
    ListenError,
    parse_listener,
    prepare_unix_socket,
    restrict_unix_socket,
)
from .metrics import Metrics
from .resolver import Resolver
from .servicer import SERVICE_NAME, LLMConfigServicer

log = logging.getLogger("llmconfig_server")
REFUSE_SECONDS = 0.25
# Every request of this service is a few hundred bytes; a megabyte is an attack or a bug.
MAX_REQUEST_BYTES = 64 * 1024

__all__ = ["Access", "ListenError", "RunningServer", "serve", "start"]


@dataclass(slots=True)
class RunningServer:
    server: grpc.aio.Server
    health: HealthServicer
    providers: ProviderHealth
    addresses: tuple[str, ...]  # as clients write the target, port 0 resolved
    admission: Admission
    metrics: Metrics
    metrics_address: str | None = None  # host:port of /metrics, when served
    _metrics_server: Any = None

    @property
    def address(self) -> str:
        return self.addresses[0]

    async def stop(self, grace: float, drain: float = 0.0) -> None:
        """Report NOT_SERVING and keep serving for `drain` seconds while load balancers and
        clients move away; then answer new calls UNAVAILABLE (clients retry it) and give calls
        still running `grace` seconds. Stopping the transport at once would cut every call in
        transit with CANCELLED, which no client retries."""
        await self.health.enter_graceful_shutdown()
        if drain > 0:
            await asyncio.sleep(drain)
        self.admission.close()
        # Long enough for calls in transit to be answered UNAVAILABLE and for their callers
        # to back off before the transport goes away.
        refusing = min(REFUSE_SECONDS, grace)
        await asyncio.sleep(refusing)
        await self.server.stop(grace - refusing)
        await self.providers.aclose()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()


async def start(resolver: Resolver, listen: str | Sequence[str | Listener],
                health_options: HealthOptions | None = None,
                access: Access | None = None, metrics_listen: str | None = None,
                ) -> RunningServer:
    """Serve on `listen`; `metrics_listen` (HOST:PORT) also serves Prometheus' /metrics."""
    access = access or Access()
    metrics = Metrics()
    listeners = [parse_listener(item) if isinstance(item, str) else item
                 for item in ([listen] if isinstance(listen, str) else listen)]
    admission = Admission()
    server = grpc.aio.server(
        # Outermost first: metrics see every outcome, refusals and denials included.
        interceptors=[metrics.interceptor(), admission, AccessInterceptor(access.tokens)],
        # gRPC shares ports by default (SO_REUSEPORT); a second daemon on our port must fail
        # loudly.
        options=[("grpc.so_reuseport", 0),
                 ("grpc.max_receive_message_length", MAX_REQUEST_BYTES)],
    )
    providers = ProviderHealth(resolver, health_options or HealthOptions())
    answers.add_to_server(LLMConfigServicer(resolver, providers), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable(server, (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"]
                               .full_name))
    addresses = tuple(_add_port(server, item, access.credentials) for item in listeners)
    metrics_server, metrics_address = _serve_metrics(metrics, metrics_listen)
    await server.start()
    for item in listeners:
        if item.is_unix:
            restrict_unix_socket(item)
    # "" is the whole server; the service name lets clients check the service itself.
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, health, providers, addresses, admission, metrics,
                         metrics_address, metrics_server)


def _serve_metrics(metrics: Metrics, listen: str | None) -> tuple[Any, str | None]:
    if not listen:
        return None, None
    from prometheus_client import start_http_server

    host, _, port = listen.rpartition(":")
    try:
        http, _thread = start_http_server(int(port), host.strip("[]") or "0.0.0.0",
                                          registry=metrics.registry)
    except (OSError, ValueError) as exc:
        raise ListenError(f"cannot serve metrics on {listen}: {exc}") from None
    shown = f"[{host.strip('[]')}]" if ":" in host.strip("[]") else host
    return http, f"{shown}:{http.server_port}"


def _add_port(server: grpc.aio.Server, listener: Listener,
              credentials: grpc.ServerCredentials | None) -> str:
    try:
        if listener.is_unix:
            prepare_unix_socket(listener)
            # The socket is created now; a tight umask closes the window before chmod.
            previous = os.umask(0o117)
            try:
                port = server.add_insecure_port(listener.grpc_address)
            finally:
                os.umask(previous)
        elif credentials is not None:
            port = server.add_secure_port(listener.grpc_address, credentials)
        else:
            port = server.add_insecure_port(listener.grpc_address)
    except RuntimeError as exc:
        raise ListenError(f"cannot listen on {listener.spec}: {exc}") from None
    return listener.bound(port)


async def serve(resolver: Resolver, listeners: Sequence[Listener], grace: float,
                health_options: HealthOptions, access: Access | None = None,
                drain: float = 1.0, metrics_listen: str | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully (see RunningServer.stop)."""
    access = access or Access()
    running = await start(resolver, listeners, health_options, access, metrics_listen)
    from .report import startup_report

    notes = [f"access: {access.description}"]
    if running.metrics_address:
        notes.append(f"metrics: http://{running.metrics_address}/metrics")
    log.info("%s", startup_report(resolver, running.addresses, notes))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    log.info("stopping: NOT_SERVING, serving %.1fs more while callers move away, then "
             "in-flight calls have %.1fs to finish", drain, grace)
    await running.stop(grace, drain)
    log.info("stopped")
