"""grpc.health.v1.Health as grpcio-health-checking serves it, within bounds: it is open to
every caller without a token (orchestrators probe it), so a service name longer than any
real one is refused, and its Watch streams count towards --max-watch-streams (streams.py)."""

from __future__ import annotations

from typing import Any, Final

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

from llmconfig_server.rpc.errors import abort_with, bad_request_status
from llmconfig_server.rpc.streams import WatchBudget, is_anonymous

# A fully-qualified service name; real ones are a few dozen characters.
MAX_SERVICE_NAME: Final = 256


class BoundedHealthServicer(HealthServicer):  # type: ignore[misc]
    """Also answers List: the aio servicer inherits the generated sync stub for it, which logs
    a traceback for every call."""

    def __init__(self, budget: WatchBudget) -> None:
        super().__init__()
        self.budget = budget

    async def Check(self, request: health_pb2.HealthCheckRequest, context: Any,
                    ) -> health_pb2.HealthCheckResponse:
        await _check_name(request, context)
        return await super().Check(request, context)

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        await _check_name(request, context)
        anonymous = is_anonymous(context.peer(), has_token=False)
        refused = self.budget.acquire(anonymous)
        if refused is not None:
            await abort_with(context, refused)
        try:
            await super().Watch(request, context)
        finally:
            self.budget.release(anonymous)

    async def List(self, request: health_pb2.HealthListRequest, context: Any,
                   ) -> health_pb2.HealthListResponse:
        return health_pb2.HealthListResponse(statuses={
            name: health_pb2.HealthCheckResponse(status=status)
            for name, status in self._server_status.items()})


async def _check_name(request: health_pb2.HealthCheckRequest, context: Any) -> None:
    name = request.service
    if len(name) > MAX_SERVICE_NAME:
        await abort_with(context, bad_request_status(
            "service", "SERVICE_NAME_TOO_LONG",
            f"service: a name of {len(name)} characters is longer than the "
            f"{MAX_SERVICE_NAME} allowed; ask for \"\" (the server) or a service's "
            "fully-qualified name, e.g. llmconfig.v1.LLMConfigService"))
