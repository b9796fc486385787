"""Build and run the grpc.aio server from the server's inputs — one call, `start(inputs)`, for
`__main__`, the tests and the bench: the service on the current state (its handlers wrapped
for access and metrics, when there are tokens or metrics), grpc.health.v1.Health, reflection,
the listeners (TCP, TLS that reloads its certificates, Unix sockets), a plaintext listener of
grpc.health.v1 alone for probes (--health-listen), metrics over HTTP, the reloader, and a
graceful stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from llmconfig_server.access.guard import AccessGuard, reloading_credentials
from llmconfig_server.access.listeners import (
    Listener,
    ListenError,
    prepare_unix_socket,
    restrict_unix_socket,
)
from llmconfig_server.health.model_lists import Refresher
from llmconfig_server.live.reloader import Reloader
from llmconfig_server.live.state import Inputs, ServerState, Snapshot, build
from llmconfig_server.observe.logs import quiet_chatty_libraries
from llmconfig_server.rpc import reflection
from llmconfig_server.rpc.convert import SERVICE_NAME
from llmconfig_server.rpc.health_protocol import BoundedHealthServicer
from llmconfig_server.rpc.streams import WatchBudget
from llmconfig_server.rpc.wrapping import Layer, WrappingServer
from llmconfig_server.service import LLMConfigService

if TYPE_CHECKING:
    from llmconfig_server.flags import Options
    from llmconfig_server.observe.metrics import Metrics

log = logging.getLogger("llmconfig_server")

__all__ = ["Inputs", "ListenError", "RunningServer", "serve", "start"]

REFUSE_SECONDS = 0.25
WARM_AFTER = 0.2  # seconds after SERVING to load the probe stack (see serve)
# Every request of this service is a few hundred bytes; a megabyte is an attack or a bug.
MAX_REQUEST_BYTES = 64 * 1024
# Dead peers of long-lived watch streams are found by pings; connections are recycled now and
# then so streams rebalance across replicas (clients reconnect with their revision).
CHANNEL_OPTIONS = (
    ("grpc.so_reuseport", 0),  # a second daemon on our port must fail, not share it
    ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
    ("grpc.max_connection_age_ms", 30 * 60_000),
    ("grpc.max_connection_age_grace_ms", 60_000),
)


@dataclass(slots=True, eq=False)
class RunningServer:
    server: grpc.aio.Server
    state: ServerState
    health: HealthServicer
    addresses: tuple[str, ...]  # as clients write the target, port 0 resolved
    metrics: Metrics | None  # only with --metrics-listen: no cost without it
    reloader: Reloader
    refresher: Refresher
    metrics_address: str | None = None  # host:port of /metrics, when served
    _metrics_server: Any = None
    health_address: str | None = None  # host:port of the health-only listener, when served
    _health_server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        return self.addresses[0]

    def reload(self, reason: str = "requested") -> str:
        """Rebuild the state from the inputs now (as SIGHUP does)."""
        return self.state.reload(reason)

    async def stop(self, grace: float, drain: float = 0.0) -> None:
        """Report NOT_SERVING and keep serving for `drain` seconds while load balancers and
        clients move away; then end watch streams and answer new calls UNAVAILABLE (clients
        retry it), and give calls still running `grace` seconds. Stopping the transport at
        once would cut every call in transit with CANCELLED, which no client retries."""
        await self.health.enter_graceful_shutdown()
        if drain > 0:
            await asyncio.sleep(drain)
        self.state.close()  # new calls are refused UNAVAILABLE, watch streams end
        await self.reloader.stop()
        await self.refresher.stop()
        # Long enough for calls in transit to be answered UNAVAILABLE and for their callers
        # to back off before the transport goes away.
        refusing = min(REFUSE_SECONDS, grace)
        await asyncio.sleep(refusing)
        await self.server.stop(grace - refusing)
        if self._health_server is not None:  # NOT_SERVING to the probes until the very end
            await self._health_server.stop(0)
        await self.state.runtime.http.aclose()
        if self._metrics_server is not None:
            self._metrics_server.close()


async def start(inputs: Inputs, snapshot: Snapshot | None = None, *,
                signals: bool = False) -> RunningServer:
    """Serve `inputs` (building their first snapshot unless given; raises BuildError).
    `signals` installs the SIGHUP handler (the process's own server only)."""
    options = inputs.options
    quiet_chatty_libraries()
    snapshot = snapshot or build(inputs)
    state = ServerState(inputs, snapshot)
    # Outermost first: metrics see every outcome, refusals and denials included.
    layers: list[Layer] = []
    budget = WatchBudget(options.max_watch_streams)
    service = LLMConfigService(state, budget)
    metrics = None
    if options.metrics_listen:
        from llmconfig_server.observe.metrics import (
            Metrics,  # prometheus-client loads only for a server that serves it
        )

        metrics = Metrics()
        layers.append(metrics.layer)
        # Every probe of this and later snapshots reaches the metrics.
        state.runtime.observer = metrics.observe_probe
        service.on_secret = metrics.count_secret
        _count_reloads(state, metrics)
        if options.access.tokens_file:
            _watch_tokens_file(state, metrics)
    # Tokens can only appear with --tokens-file, fixed for the process.
    if options.access.tokens_file:
        layers.append(AccessGuard(lambda: state.current.access.tokens))
    server = grpc.aio.server(options=(*CHANNEL_OPTIONS, *_abuse_limits(options)))
    if layers:  # still a grpc.aio.Server, so every library registers its aio servicer
        server = WrappingServer(server, layers)
    service.add_to(server)
    health = BoundedHealthServicer(budget)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable(server, (SERVICE_NAME, health_pb2.DESCRIPTOR
                               .services_by_name["Health"].full_name))
    credentials = None
    if (tls := options.access.tls) is not None:
        # One per listener: each port's TLS context follows the material on its own.
        def credentials() -> grpc.ServerCredentials:
            return reloading_credentials(lambda: state.current.access.tls,
                                         tls.client_ca is not None)
    addresses = tuple(_add_port(server, item, credentials) for item in options.listeners)
    health_server, health_address = None, None
    if options.health_listen is not None:
        health_server, health_address = _health_only(
            health, options.health_listen, [metrics.layer] if metrics is not None else [],
            options)
    metrics_server, metrics_address = None, None
    if metrics is not None and options.metrics_listen:
        metrics_server, metrics_address = _serve_metrics(metrics, options.metrics_listen)
    await server.start()
    if health_server is not None:
        await health_server.start()
    for item in options.listeners:
        if item.is_unix:
            restrict_unix_socket(item)
    # "" is the whole server; the service name lets clients check the service itself.
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    reloader = Reloader(state, options.reload_interval)
    reloader.start(signals=signals)
    refresher = Refresher(state, options.models_refresh_interval)
    service.refresher = refresher
    refresher.start()
    return RunningServer(server, state, health, addresses, metrics, reloader, refresher,
                         metrics_address, metrics_server, health_address, health_server)


# Young collections every 2,000 net allocations instead of 700, and a full one after 100
# middle ones instead of 10: with 5,000 watch streams open (~45 tracked objects each) a full
# collection holds the event loop 100–500 ms, which was the longest pause callers saw while a
# change fanned out (bench/attack.py: bystanders' p99 10 ms with this, up to 150 ms without).
GC_THRESHOLDS: Final = (2000, 10, 100)


def _tune_collector() -> None:
    """The process's own server only (tests share their interpreter)."""
    gc.collect()
    gc.freeze()  # what start-up made (modules, the first state) lives as long as the process
    gc.set_threshold(*GC_THRESHOLDS)


def _abuse_limits(options: Options) -> tuple[tuple[str, int], ...]:
    """gRPC core's per-connection bound (grpc.max_concurrent_streams, channel_arg_names.h):
    at most N streams in progress, advertised in SETTINGS, so a client queues the rest instead
    of the server resetting them (4,000 resolves at once on one AsyncClient: ~1,000 CANCELLED
    without it). With it, chttp2's overload protection (grpc.http.overload_protection, on by
    default) counts a stream until the server has freed it and refuses the ones past N
    (REFUSED_STREAM, which clients see as a retryable UNAVAILABLE): that is what holds an
    HTTP/2 rapid reset to a few MB with no call lost by bystanders (bench/transport.py).
    grpcio 1.85 has no argument that closes such a connection: every abuse branch of chttp2's
    parsing.cc (init_header_frame_parser) answers RST_STREAM and keeps it open."""
    return (("grpc.max_concurrent_streams", options.max_concurrent_streams),)


def runner_report(snapshot: Snapshot) -> list[str]:
    """One line per mode: the runner settings are usable, or why not (never fatal). The
    server's own mode gets every problem; the other mode, one short line naming the settings
    and the command that explains them (a local server's cloud settings are rarely set)."""
    from llmconfig_server.resolve import runner
    from llmconfig_server.resolve.catalog import MODES
    from llmconfig_server.resolve.domain import ConfigError, Origin, Source

    own = snapshot.resolver.default_mode
    lines = []
    for mode in MODES:
        try:
            runner.resolve(snapshot.resolver.sources.layers_for(mode), mode,
                           Origin("mode", Source.REQUEST, "report"),
                           revision_key=snapshot.resolver.revision_key)
        except ConfigError as exc:
            if mode == own:
                lines.append(f"runner settings ({mode} mode) are not usable: {exc}")
                continue
            fields = list(dict.fromkeys(v.field for v in exc.violations))
            named = ", ".join(fields[:2]) + (f" and {len(fields) - 2} more" if fields[2:] else "")
            lines.append(f"runner settings ({mode} mode) are not usable: {named}; "
                         f"`llmconfig runner --mode {mode}` says how to set them")
        else:
            lines.append(f"runner settings ({mode} mode): ok")
    return lines


def _warm(running: RunningServer) -> None:
    """Load the probe stack (httpx, its TLS context, the probes) off the event loop; a
    failure here is one the first health check meets and reports in its verdict."""
    try:
        running.state.runtime.http.warm()
    except Exception as exc:  # never fatal: a check builds the pool itself
        log.debug("warming the probe stack failed: %s", exc)


def _count_reloads(state: ServerState, metrics: Metrics) -> None:
    """Reload results and the server's own revision, as they change."""
    def revision() -> str:
        base = state.current.resolver.base()
        return getattr(base, "revision", "invalid")

    metrics.set_revision(revision())

    def counted(result: str) -> None:
        metrics.reloads.labels(result).inc()
        metrics.set_revision(revision())

    state.on_swap(counted)


def _watch_tokens_file(state: ServerState, metrics: Metrics) -> None:
    """Whether the tokens file accepts tokens (0: empty or unusable, every token refused)."""
    def update(_result: str = "") -> None:
        tokens = state.current.access.tokens
        metrics.tokens_file_ok.set(int(tokens is not None and tokens.problem is None))

    update()
    state.on_swap(update)


def _add_port(server: grpc.aio.Server, listener: Listener,
              credentials: Callable[[], grpc.ServerCredentials] | None) -> str:
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
            port = server.add_secure_port(listener.grpc_address, credentials())
        else:
            port = server.add_insecure_port(listener.grpc_address)
    except RuntimeError as exc:
        raise ListenError(f"cannot listen on {listener.spec}: {exc}") from None
    return listener.bound(port)


def _health_only(health: HealthServicer, listener: Listener, layers: list[Layer],
                 options: Options) -> tuple[grpc.aio.Server, str]:
    """A server of its own with only grpc.health.v1 — the same servicer as the main listeners,
    so it answers the same statuses (NOT_SERVING from the first moment of a drain) and its
    Watch streams count in the same budget — in plaintext: the kubelet's gRPC probe can do
    neither TLS (before 1.37's `mode`) nor tokens. No other service, so no key, is reachable
    on it: anything else is UNIMPLEMENTED."""
    server = grpc.aio.server(options=(*CHANNEL_OPTIONS, *_abuse_limits(options)))
    if layers:
        server = WrappingServer(server, layers)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    return server, _add_port(server, listener, None)


def _serve_metrics(metrics: Metrics, listen: str) -> tuple[Any, str | None]:
    from llmconfig_server.observe.metrics_http import MetricsHTTP

    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    http = MetricsHTTP(metrics.registry)
    try:
        bound = http.start(host, int(port))
    except (OSError, ValueError) as exc:
        raise ListenError(f"cannot serve metrics on {listen}: {exc}") from None
    shown = f"[{host}]" if ":" in host else host
    return http, f"{shown}:{bound}"


async def serve(inputs: Inputs, snapshot: Snapshot) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully (see RunningServer.stop)."""
    options = inputs.options
    running = await start(inputs, snapshot, signals=True)
    # Before anything says it is up: a SIGTERM right after the startup lines (a supervisor
    # that saw them) must stop it gracefully, not kill it with the default action.
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    _tune_collector()
    from llmconfig_server.observe.report import startup_report

    notes = [f"access: {snapshot.access.description}"]
    if running.metrics_address:
        notes.append(f"metrics: http://{running.metrics_address}/metrics")
    if running.health_address:
        notes.append(f"health: grpc.health.v1 alone on {running.health_address} (plaintext, "
                     "no token)")
    notes += runner_report(snapshot)
    if options.reload_interval > 0:
        notes.append(f"reload: on SIGHUP, file changes, and every {options.reload_interval:g} s")
    for warning in snapshot.access.warnings:
        log.warning("%s", warning)
    if (tokens := snapshot.access.tokens) is not None and tokens.problem is not None:
        log.error("%s", tokens.problem)  # an empty list; an unusable file stopped __main__
    log.info("%s", startup_report(snapshot.resolver, running.addresses, notes))
    # SERVING now: the first CheckProviderHealth need not pay for importing the probe stack.
    # Loaded on a thread, a moment later: the first health checks of whoever waits for SERVING
    # are answered first.
    loop.call_later(WARM_AFTER, lambda: threading.Thread(
        target=_warm, args=(running,), name="llmconfig-warm", daemon=True).start())
    await stopping.wait()
    log.info("stopping: NOT_SERVING, serving %.1fs more while callers move away, then "
             "in-flight calls have %.1fs to finish", options.drain_seconds,
             options.shutdown_grace)
    await running.stop(options.shutdown_grace, options.drain_seconds)
    log.info("stopped")
