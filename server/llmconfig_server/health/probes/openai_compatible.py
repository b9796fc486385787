"""Any OpenAI-compatible server declared in the catalog (vLLM, LM Studio, llama.cpp's server,
OpenRouter, …): GET {base}/models, with a Bearer key only when the provider declares one and the
base URL is resolved for it. No tokens. The model is healthy when the server lists it."""

from __future__ import annotations

from llmconfig_server.health.probes._common import (
    Answer,
    ProbeFailed,
    Upstream,
    error_text,
    get,
    json_or_fail,
    status_for_http_error,
)
from llmconfig_server.health.probes.listing import clean_id
from llmconfig_server.resolve.domain import HealthStatus, ProbeTarget, Verdict

SHOWN_MODELS = 200  # ids reported back; a server may list thousands


async def probe(http: Upstream, target: ProbeTarget) -> Verdict:
    name = target.display_name or target.provider
    what = f"{name} (an OpenAI-compatible API)"
    headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    try:
        response = await get(http, f"{target.base_url}/models", target, what, headers)
        if not response.is_success:
            return _failure(response, target, name)
        body = json_or_fail(response, target, what)
    except ProbeFailed as failed:
        if failed.verdict.status is HealthStatus.UNREACHABLE and "nothing is listening" in \
                failed.verdict.message:
            return Verdict(HealthStatus.UNREACHABLE,
                           f"{name} is not running at {target.base_url} — start it, or point "
                           f"the base URL at where it listens")
        return failed.verdict
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return Verdict(HealthStatus.BAD_RESPONSE,
                       f"{target.base_url}/models answered without a model list (no data "
                       f"array) — is {target.base_url} the OpenAI-compatible root (…/v1)?")
    ids = sorted({i for e in data if isinstance(e, dict) and (i := clean_id(e.get("id")))})
    shown = tuple(ids[:SHOWN_MODELS])
    if target.model in ids:
        return Verdict(HealthStatus.HEALTHY,
                       f"{name} at {target.base_url} is up and serves {target.model}",
                       True, shown)
    serves = f"; it serves {', '.join(ids[:5])}" + (" …" if len(ids) > 5 else "") if ids \
        else "; it lists no models"
    return Verdict(HealthStatus.MODEL_NOT_FOUND,
                   f"{name} at {target.base_url} does not serve {target.model}{serves} — load "
                   "the model there, or ask for one it serves", False, shown)


def _failure(response: Answer, target: ProbeTarget, name: str) -> Verdict:
    code = response.status_code
    said = error_text(response, target.api_key)
    detail = f" ({said})" if said else ""
    status = status_for_http_error(code) or HealthStatus.BAD_RESPONSE
    if status is HealthStatus.UNAUTHENTICATED:
        message = (f"{name} at {target.base_url} refused the key ({target.key_hint}, from "
                   f"{target.key_origin}){detail}" if target.api_key else
                   f"{name} at {target.base_url} wants a key{detail} — declare api_key_env for "
                   "it in the catalog and set that variable")
    elif status is HealthStatus.MODEL_NOT_FOUND:
        status = HealthStatus.BAD_RESPONSE
        message = (f"{target.base_url}/models answered 404 — is {target.base_url} the "
                   "OpenAI-compatible root (it usually ends in /v1)?")
    else:
        message = f"{name} at {target.base_url} answered {code}{detail}"
    return Verdict(status, message)
