"""Prometheus metrics (`--metrics-listen HOST:PORT`): every RPC under the go-grpc-prometheus
names and labels, plus what only this service knows — provider health, probes, reloads, the
config revision and who received secrets.

Each server has a registry of its own (tests run several servers in one process), and label
children are bound once per method, so a unary call costs four counter increments and one
histogram observation. Calls are seen through wrapping.py, like access: every kind of handler,
refusals included, and a client's cancel counted as `Canceled`.
"""

from __future__ import annotations

import time
from typing import Any, Final

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from llmconfig_server.rpc.wrapping import Method, Observer, Start

# go-grpc-prometheus' default buckets.
BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# grpc_code values as Go's codes.Code.String() spells them, so dashboards carry over.
GO_CODE_NAMES: Final = {code: "".join(p.capitalize() for p in code.name.split("_"))
                        for code in grpc.StatusCode} | {grpc.StatusCode.OK: "OK",
                                                        grpc.StatusCode.CANCELLED: "Canceled"}
_TYPES: Final = {"unary_unary": "unary", "unary_stream": "server_stream",
                 "stream_unary": "client_stream", "stream_stream": "bidi_stream"}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("grpc_type", "grpc_service", "grpc_method")
        self.started = Counter("grpc_server_started_total",
                               "Total number of RPCs started on the server.", labels,
                               registry=self.registry)
        self.handled = Counter("grpc_server_handled_total",
                               "Total number of RPCs completed on the server, regardless of "
                               "success or failure.", (*labels, "grpc_code"),
                               registry=self.registry)
        self.handling = Histogram("grpc_server_handling_seconds",
                                  "Histogram of response latency (seconds) of gRPC that had "
                                  "been application-level handled by the server.", labels,
                                  buckets=BUCKETS, registry=self.registry)
        self.msg_sent = Counter("grpc_server_msg_sent_total",
                                "Total number of gRPC stream messages sent by the server.",
                                labels, registry=self.registry)
        self.msg_received = Counter("grpc_server_msg_received_total",
                                    "Total number of RPC stream messages received on the "
                                    "server.", labels, registry=self.registry)
        self.provider_health = Gauge(
            "llmconfig_provider_health",
            "1 for the provider's latest health status, 0 for its other statuses.",
            ("provider", "base_url", "status"), registry=self.registry)
        self.probes = Counter("llmconfig_provider_probes_total",
                              "Upstream provider probes made (cache misses).",
                              ("provider", "status"), registry=self.registry)
        self.reloads = Counter("llmconfig_config_reloads_total",
                               "Configuration reloads, by result.", ("result",),
                               registry=self.registry)
        self.config_info = Gauge("llmconfig_config_info",
                                 "1 for the revision of the server's own configuration.",
                                 ("revision",), registry=self.registry)
        self.secrets_served = Counter("llmconfig_secrets_served_total",
                                      "Answers that carried an API key, by token name.",
                                      ("token",), registry=self.registry)
        # Only with --tokens-file: 0 while the file is empty or unusable (every token refused).
        self.tokens_file_ok = Gauge("llmconfig_tokens_file_ok",
                                    "1 while the tokens file accepts tokens; 0 while it is "
                                    "empty or cannot be used and every token is refused.",
                                    registry=self.registry)

    def layer(self, method: Method) -> Start:
        """Counts and times every call of `method` (a wrapping.Layer)."""
        return _Bound(self, method).start

    def set_provider_status(self, provider: str, base_url: str, status: str,
                            statuses: tuple[str, ...]) -> None:
        for name in statuses:
            self.provider_health.labels(provider, base_url, name).set(int(name == status))

    def count_secret(self, token: str) -> None:
        self.secrets_served.labels(token).inc()

    def observe_probe(self, report: Any, own_target: bool) -> None:
        """An upstream probe's HealthReport: count it; for the server's own targets, make its
        status the current one (a gauge series per target a caller names would be unbounded)."""
        from llmconfig_server.resolve.domain import HealthStatus
        from llmconfig_server.support.redact import redact_url

        status = report.status.name
        self.probes.labels(report.provider, status).inc()
        if own_target:
            self.set_provider_status(report.provider, redact_url(report.base_url), status,
                                     tuple(s.name for s in HealthStatus))

    def set_revision(self, revision: str) -> None:
        self.config_info.clear()
        self.config_info.labels(revision).set(1)


class _Bound:
    """One method's label children, bound once, when its service is registered."""

    def __init__(self, metrics: Metrics, method: Method) -> None:
        labels = (_TYPES[method.kind], method.service, method.name)
        self.labels = labels
        self.metrics = metrics
        self.started = metrics.started.labels(*labels)
        self.handling = metrics.handling.labels(*labels)
        self.msg_sent = metrics.msg_sent.labels(*labels)
        self.msg_received = metrics.msg_received.labels(*labels)
        self._handled: dict[str, Any] = {}

    def start(self, context: Any) -> _Call:
        self.started.inc()
        return _Call(self)

    def handled(self, code: grpc.StatusCode) -> Any:
        name = GO_CODE_NAMES[code]
        child = self._handled.get(name)
        if child is None:
            child = self._handled[name] = self.metrics.handled.labels(*self.labels, name)
        return child


class _Call(Observer):
    """One call: counted and timed."""

    __slots__ = ("began", "bound")

    def __init__(self, bound: _Bound) -> None:
        self.bound = bound
        self.began = time.perf_counter()

    def received(self) -> None:
        self.bound.msg_received.inc()

    def sent(self) -> None:
        self.bound.msg_sent.inc()

    def finished(self, code: grpc.StatusCode) -> None:
        self.bound.handled(code).inc()
        self.bound.handling.observe(time.perf_counter() - self.began)
