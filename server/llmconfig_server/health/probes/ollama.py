"""Ollama: GET /api/version and GET /api/tags (what is pulled). No tokens, no key."""

from __future__ import annotations

import asyncio

import httpx

from llmconfig_server.health.probes._common import (
    Answer,
    ProbeFailed,
    Upstream,
    clean_text,
    get,
    is_loopback_url,
    json_or_fail,
    status_for_http_error,
)
from llmconfig_server.health.probes.listing import ID_LIMIT
from llmconfig_server.health.probes.ollama_cloud import cloud_tags, signin_problem
from llmconfig_server.resolve.domain import HealthStatus, ProbeTarget, Verdict

WHAT = "Ollama"
VERSION_LIMIT = 64  # characters of a version shown
SHOWN_RELATIVES = 5  # pulled models of the same family named in a message


def normalize(name: str) -> str:
    """Ollama's naming: an untagged name means `:latest`."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def family(name: str) -> str:
    return normalize(name).rsplit(":", 1)[0]


async def probe(http: Upstream, target: ProbeTarget) -> Verdict:
    try:
        version_response, tags_response = await asyncio.gather(
            get(http, f"{target.base_url}/api/version", target, WHAT),
            get(http, f"{target.base_url}/api/tags", target, WHAT),
        )
    except ProbeFailed as failed:
        return _with_hints(failed.verdict, target)
    try:
        for response in (version_response, tags_response):
            _raise_for_status(response, target)
        version = json_or_fail(version_response, target, WHAT)
        tags = json_or_fail(tags_response, target, WHAT)
        pulled = _pulled_models(tags, target)
    except ProbeFailed as failed:
        return failed.verdict
    server_version = clean_text(str(version.get("version", "")), VERSION_LIMIT) \
        if isinstance(version, dict) else ""
    wanted = normalize(target.model)
    available = wanted in {normalize(name) for name in pulled}
    if available and wanted in {normalize(name) for name in cloud_tags(tags)} and \
            (problem := await signin_problem(http, target)) is not None:
        return Verdict(problem.status, problem.message, True, tuple(pulled), server_version)
    if available:
        running = f"Ollama {server_version}".strip()
        return Verdict(
            HealthStatus.HEALTHY,
            f"{running} at {target.base_url} is running and {target.model} is pulled",
            True, tuple(pulled), server_version,
        )
    relatives = [name for name in pulled if family(name) == family(wanted)]
    named = ", ".join(relatives[:SHOWN_RELATIVES]) + (" …" if len(relatives) > SHOWN_RELATIVES
                                                      else "")
    others = f" ({named} {'is' if len(relatives) == 1 else 'are'})" if relatives else ""
    return Verdict(
        HealthStatus.MODEL_NOT_FOUND,
        f"Model {target.model} is not pulled{others} — run \"ollama pull {target.model}\"",
        False, tuple(pulled), server_version,
    )


def _raise_for_status(response: Answer, target: ProbeTarget) -> None:
    if response.is_success:
        return
    status = status_for_http_error(response.status_code)
    if response.status_code == 404 or status is None:
        # Ollama has both endpoints; a 404 here means the URL is not an Ollama API root.
        raise ProbeFailed(Verdict(
            HealthStatus.BAD_RESPONSE,
            f"{response.url} answered {response.status_code} — is {target.base_url} "
            "really Ollama? (the base URL is the API root, e.g. http://localhost:11434)",
        ))
    raise ProbeFailed(Verdict(
        status,
        f"Ollama at {target.base_url} answered {response.status_code} — "
        + ("a proxy in front of it wants credentials" if status is HealthStatus.UNAUTHENTICATED
           else "it is too busy; retry shortly" if status is HealthStatus.RATE_LIMITED
           else "check its log (journalctl -u ollama, or the terminal running ollama serve)"),
    ))


def _pulled_models(tags: object, target: ProbeTarget) -> list[str]:
    models = tags.get("models") if isinstance(tags, dict) else None
    if not isinstance(models, list):
        raise ProbeFailed(Verdict(
            HealthStatus.BAD_RESPONSE,
            f"{target.base_url}/api/tags did not list models as Ollama does — is "
            f"{target.base_url} really Ollama?",
        ))
    # Names are shown (the message, available_models): cleaned of control and format
    # characters and bounded, like the version.
    names = [clean_text(str(m.get("name") or m.get("model") or ""), ID_LIMIT)
             for m in models if isinstance(m, dict)]
    return sorted(name for name in names if name)


def _with_hints(verdict: Verdict, target: ProbeTarget) -> Verdict:
    if verdict.status is not HealthStatus.UNREACHABLE or any(
            said in verdict.message for said in ("cannot resolve", "the URL is not usable")):
        return verdict
    message = f"Ollama is not running at {target.base_url} — start it with \"ollama serve\""
    if target.in_container and is_loopback_url(target.base_url):
        port = httpx.URL(target.base_url).port or 11434
        message += (
            f"; this service runs in a container, where {httpx.URL(target.base_url).host} is "
            f"the container itself: to reach Ollama on the host set "
            f"OLLAMA_HOST=http://host.docker.internal:{port} (with --add-host "
            "host.docker.internal:host-gateway on Linux)"
        )
    return Verdict(verdict.status, message)
