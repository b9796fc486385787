"""Ollama cloud models (`gpt-oss:120b-cloud`): pulled like any tag, but they run on ollama.com,
which needs the local Ollama signed in (`ollama signin`). Ollama answers `POST /api/me` with the
signed-in account, or 401 `{"error": "unauthorized", "signin_url": …}` (server/routes.go,
WhoamiHandler); it spends no tokens. Docs: https://docs.ollama.com/api/authentication
"""

from __future__ import annotations

from typing import Any

from llmconfig_server.health.probes._common import ProbeFailed, Upstream
from llmconfig_server.resolve.domain import HealthStatus, ProbeTarget, Verdict


def cloud_tags(tags: Any) -> set[str]:
    """The tags in an /api/tags answer that run on ollama.com: a `remote_host`, or the
    `-cloud` / `:cloud` naming of Ollama's library."""
    models = tags.get("models") if isinstance(tags, dict) else None
    found = set()
    for entry in models if isinstance(models, list) else ():
        if not isinstance(entry, dict):
            continue
        name = str(entry.get("name") or entry.get("model") or "")
        if entry.get("remote_host") or name.endswith(("-cloud", ":cloud")):
            found.add(name)
    return found


async def signin_problem(http: Upstream, target: ProbeTarget) -> Verdict | None:
    """A verdict when the local Ollama is not signed in to ollama.com; None when it is, or
    when this Ollama cannot say (an older one without /api/me, ollama.com unreachable)."""
    status = await _whoami(http, target)
    if status != 401:
        return None
    return Verdict(HealthStatus.UNAUTHENTICATED, (
        f"{target.model} is a cloud model: it is pulled, but it runs on ollama.com, and the "
        f"Ollama at {target.base_url} is not signed in — run \"ollama signin\" on the machine "
        "running Ollama, then check again"))


async def _whoami(http: Upstream, target: ProbeTarget) -> int | None:
    """The status of `POST /api/me`, or None when there is no answer."""
    try:
        # The status is all we need: the body is never read (a hostile answer cannot grow).
        return await http.status("POST", f"{target.base_url}/api/me", target, "Ollama")
    except ProbeFailed:
        return None
