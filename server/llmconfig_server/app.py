"""Build and run the grpc.aio server: the service, grpc.health.v1.Health, reflection, and a
graceful stop (NOT_SERVING first, then in-flight calls get the grace period)."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from . import answers, reflection
from .health import HealthOptions, ProviderHealth
from .resolver import Resolver
from .servicer import SERVICE_NAME, LLMConfigServicer

log = logging.getLogger("llmconfig_server")


class ListenError(Exception):
    """The address cannot be served on (in use, not an address of this machine, malformed)."""


@dataclass(slots=True)
class RunningServer:
    server: grpc.aio.Server
    health: HealthServicer
    providers: ProviderHealth
    address: str  # host:port actually bound (port 0 resolved)

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING so load balancers drain us, then let in-flight calls finish."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.providers.aclose()


async def start(resolver: Resolver, listen: str,
                health_options: HealthOptions | None = None) -> RunningServer:
    # gRPC shares ports by default (SO_REUSEPORT); a second daemon on our port must fail loudly.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    providers = ProviderHealth(resolver, health_options or HealthOptions())
    answers.add_to_server(LLMConfigServicer(resolver, providers), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable(server, (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"]
                               .full_name))
    try:
        port = server.add_insecure_port(listen)
    except RuntimeError as exc:
        raise ListenError(f"cannot listen on {listen}: {exc}") from None
    host = listen.rsplit(":", 1)[0]
    await server.start()
    # "" is the whole server; the service name lets clients check the service itself.
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, health, providers, f"{host}:{port}")


async def serve(resolver: Resolver, listen: str, grace: float,
                health_options: HealthOptions) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully."""
    running = await start(resolver, listen, health_options)
    from .report import startup_report

    log.info("%s", startup_report(resolver, running.address))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    log.info("stopping: NOT_SERVING, in-flight calls have %.1fs to finish", grace)
    await running.stop(grace)
    log.info("stopped")
