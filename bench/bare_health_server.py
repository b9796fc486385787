"""A second floor for cold start: a bare grpc.aio server that serves only grpc.health.v1 (the
grpcio-health-checking servicer, set SERVING after start), so the floor is asked the same
question as llmconfig-server and pays for the same health module.

Run as `python bench/bare_health_server.py PORT`; prints `serving on ADDRESS`.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer


async def main() -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port(f"127.0.0.1:{sys.argv[1] if len(sys.argv) > 1 else 0}")
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    print(f"serving on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)


if __name__ == "__main__":
    asyncio.run(main())
