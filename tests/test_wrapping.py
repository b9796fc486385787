"""The one wrapping mechanism (wrapping.py) around every kind of handler, on a real grpc.aio
server: a sync servicer (grpcio-health-checking's own, as a library may register) is served
and counted like the async ones, instead of breaking the calls."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import generate_latest

from llmconfig_server.observe.metrics import Metrics
from llmconfig_server.rpc.wrapping import WrappingServer


def handled(metrics: Metrics, code: str) -> float:
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith("grpc_server_handled_total{") and f'grpc_code="{code}"' in line \
                and 'grpc_method="Check"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_sync_servicer_is_served_and_counted_through_the_layers():
    metrics = Metrics()

    async def run() -> tuple[int, grpc.StatusCode]:
        server = WrappingServer(grpc.aio.server(), [metrics.layer])
        assert isinstance(server, grpc.aio.Server)  # what libraries check before registering
        sync = health.HealthServicer()  # the sync servicer: its handlers are plain functions
        health_pb2_grpc.add_HealthServicer_to_server(sync, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
                try:
                    await stub.Check(health_pb2.HealthCheckRequest(service="nothing"),
                                     timeout=10)
                    missing = grpc.StatusCode.OK
                except grpc.aio.AioRpcError as exc:
                    missing = exc.code()
            return answer.status, missing
        finally:
            await server.stop(None)

    status, missing = asyncio.run(run())
    assert status == health_pb2.HealthCheckResponse.SERVING
    assert missing is grpc.StatusCode.NOT_FOUND
    assert handled(metrics, "OK") == 1
    assert handled(metrics, "NotFound") == 1
