"""Server reflection, v1alpha and v1, so `grpcurl list` / `describe` work with no proto files.

grpcio-reflection ships only the v1alpha protocol. v1 is the same protocol under a renamed
package (identical messages and field numbers), so we register the v1 descriptor as a renamed
copy of v1alpha's and serve it with the same servicer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

V1_SERVICE = "grpc.reflection.v1.ServerReflection"
V1ALPHA_SERVICE = reflection.SERVICE_NAME


def _register_v1_descriptor() -> None:
    pool = descriptor_pool.Default()
    try:
        pool.FindServiceByName(V1_SERVICE)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = proto.package, "grpc.reflection.v1"
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = new
    for message in proto.message_type:
        for field in message.field:
            if field.type_name:  # proto2: assigning "" would mark it present
                field.type_name = field.type_name.replace(f".{old}.", f".{new}.")
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(f".{old}.", f".{new}.")
            method.output_type = method.output_type.replace(f".{old}.", f".{new}.")
    pool.Add(proto)


class _Pool:
    """The default descriptor pool, which also finds the file of a method symbol
    (`llmconfig.v1.LLMConfigService.ResolveLLMConfig`): the upb pool finds services, messages
    and fields but not methods, so `grpcurl describe` of a method said "Symbol not found"."""

    def __init__(self, pool: descriptor_pool.DescriptorPool) -> None:
        self._pool = pool

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    def FindFileContainingSymbol(self, symbol: str) -> Any:
        try:
            return self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            service, _, method = symbol.rpartition(".")
            if not service or not method:
                raise
            descriptor = self._pool.FindServiceByName(service)  # KeyError: not found either
            if method not in descriptor.methods_by_name:
                raise
            return descriptor.file


def enable(server: grpc.aio.Server, service_names: Sequence[str]) -> None:
    """Serve reflection v1alpha and v1 with grpcio-reflection's aio servicer, chosen here and
    not by `enable_server_reflection`, which picks the sync one for any server it does not
    recognise as grpc.aio."""
    _register_v1_descriptor()
    names = (*service_names, V1ALPHA_SERVICE, V1_SERVICE)
    servicer = reflection.aio.ReflectionServicer(names, pool=_Pool(descriptor_pool.Default()))
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    handlers = {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(V1_SERVICE,
                                                                          handlers),))
    server.add_registered_method_handlers(V1_SERVICE, handlers)
