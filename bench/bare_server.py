"""The transport floor: a bare grpc.aio server that answers every call with an empty message
(google.protobuf.Empty: a real gRPC service pays for protobuf too, but for nothing else).

Run as `python -m bench.bare_server [PORT | unix:PATH]`; prints `serving on ADDRESS` like
llmconfig-server.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import grpc
from google.protobuf import empty_pb2

METHOD = "/bench.v1.Bare/Call"


_EMPTY = empty_pb2.Empty()


async def _empty(request: empty_pb2.Empty, context: grpc.aio.ServicerContext) -> empty_pb2.Empty:  # type: ignore[type-arg]
    return _EMPTY


async def main() -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    handler = grpc.method_handlers_generic_handler("bench.v1.Bare", {
        "Call": grpc.unary_unary_rpc_method_handler(
            _empty, request_deserializer=empty_pb2.Empty.FromString,
            response_serializer=empty_pb2.Empty.SerializeToString),
    })
    server.add_generic_rpc_handlers((handler,))
    where = sys.argv[1] if len(sys.argv) > 1 else "0"
    if where.startswith("unix:"):
        server.add_insecure_port(where)
        address = where
    else:
        address = f"127.0.0.1:{server.add_insecure_port(f'127.0.0.1:{where}')}"
    await server.start()
    print(f"serving on {address}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)


if __name__ == "__main__":
    asyncio.run(main())
