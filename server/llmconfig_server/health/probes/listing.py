"""Listing a provider's models, spending no tokens: Anthropic `GET /v1/models` (paged with
`after_id` while `has_more`), OpenAI's and any OpenAI-compatible server's `GET {base}/models`,
Ollama's `GET /api/tags`.

The HTTP requests go through `_common.get` (the probes' path: the probe's timeout, no redirects,
network failures as a sentence) in `_fetch` alone, so a change to how probes read an answer
reaches the lists too. What comes back is untrusted: at most MAX_MODELS entries are kept (the
rest counted), an id that is not a plain printable string of at most ID_LIMIT characters is
dropped (counted), numbers are taken only as positive integers in range, and dates only as
`YYYY-MM-DD`. Paging stops after MAX_PAGES pages or when a cursor repeats.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from llmconfig_server.health.probes._common import ProbeFailed, Upstream, error_text, get
from llmconfig_server.resolve.catalog import Listed

if TYPE_CHECKING:
    from llmconfig_server.health.model_lists import Listing, ListTarget

MAX_MODELS: Final = 2000
ID_LIMIT: Final = 256
MAX_PAGES: Final = 20
# Anthropic's page size: a model object with its capabilities is ~1.5 KB, so 100 keep a page
# well under the probes' 1 MiB answer cap (the API allows up to 1000).
ANTHROPIC_PAGE: Final = 100
ANTHROPIC_VERSION: Final = "2023-06-01"
_NUMBER_LIMIT: Final = 100_000_000


class ListingFailed(Exception):
    """The list could not be had; `message` says why in one line (never a key)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def list_models(http: Upstream, target: ListTarget) -> Listing:
    """The models `target` lists; raises ListingFailed."""
    from llmconfig_server.health.model_lists import Listing

    kind = target.kind
    if kind in ("anthropic", "openai") and not target.probe.api_key:
        raise ListingFailed("no key is configured for it here, so it was not asked")
    collected = _Collected()
    if kind == "anthropic":
        await _anthropic(http, target, collected)
    elif kind == "ollama":
        body = await _fetch(http, f"{target.base_url}/api/tags", target, {})
        _take_ollama(body, collected)
    else:  # openai, openai-compatible
        headers = {"Authorization": f"Bearer {target.probe.api_key}"} \
            if target.probe.api_key else {}
        body = await _fetch(http, f"{target.base_url}/models", target, headers)
        _take_openai(body, collected)
    return Listing(target.provider, target.base_url, tuple(collected.models),
                   datetime.now(UTC), collected.refused, collected.truncated,
                   frozenset(collected.cloud))


async def _anthropic(http: Upstream, target: ListTarget, collected: _Collected,
                     ) -> None:
    headers = {"x-api-key": target.probe.api_key, "anthropic-version": ANTHROPIC_VERSION}
    after: str | None = None
    seen_cursors: set[str] = set()
    for _ in range(MAX_PAGES):
        cursor = f"&after_id={quote(after, safe='')}" if after else ""
        body = await _fetch(http, f"{target.base_url}/v1/models?limit={ANTHROPIC_PAGE}{cursor}",
                            target, headers)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise ListingFailed("the answer is not Anthropic's model list (no data array)")
        for entry in body["data"]:
            if isinstance(entry, dict):
                collected.add(entry.get("id"), _number(entry.get("max_tokens")),
                              _number(entry.get("max_input_tokens")), None)
            else:
                collected.refused += 1
        last = body.get("last_id")
        if body.get("has_more") is not True or not isinstance(last, str) \
                or last in seen_cursors or collected.truncated:
            return
        seen_cursors.add(last)
        after = last
    collected.truncated = True  # more pages than we read


def _take_openai(body: Any, collected: _Collected) -> None:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ListingFailed("the answer is not an OpenAI model list (no data array)")
    for entry in data:
        if isinstance(entry, dict):
            collected.add(entry.get("id"), None, None, _date(entry.get("shutdown_date")))
        else:
            collected.refused += 1


def _take_ollama(body: Any, collected: _Collected) -> None:
    models = body.get("models") if isinstance(body, dict) else None
    if not isinstance(models, list):
        raise ListingFailed("the answer is not Ollama's tag list (no models array)")
    for entry in models:
        if not isinstance(entry, dict):
            collected.refused += 1
            continue
        name = entry.get("name") or entry.get("model")
        if collected.add(name, None, None, None) and (
                entry.get("remote_host") or str(name).endswith(("-cloud", ":cloud"))):
            collected.cloud.add(str(name))


async def _fetch(http: Upstream, url: str, target: ListTarget,
                 headers: dict[str, str]) -> Any:
    """One GET on the probes' path; the body as JSON, or ListingFailed."""
    try:
        response = await get(http, url, target.probe, target.provider, headers)
    except ProbeFailed as failed:
        raise ListingFailed(failed.verdict.message) from None
    if not response.is_success:
        said = error_text(response, target.probe.api_key)
        raise ListingFailed(f"it answered {response.status_code}" + (f" ({said})" if said else ""))
    try:
        return response.json()
    except ValueError:
        raise ListingFailed(f"it answered {response.status_code} but not with JSON") from None


class _Collected:
    def __init__(self) -> None:
        self.models: list[Listed] = []
        self.seen: set[str] = set()
        self.refused = 0
        self.truncated = False
        self.cloud: set[str] = set()

    def add(self, raw: Any, max_output: int | None, context: int | None,
            retires_on: date | None) -> bool:
        model_id = clean_id(raw)
        if model_id is None:
            self.refused += 1
            return False
        if model_id in self.seen:
            return False
        if len(self.models) >= MAX_MODELS:
            self.truncated = True
            return False
        self.seen.add(model_id)
        self.models.append(Listed(model_id, max_output, context, retires_on))
        return True


def clean_id(raw: Any) -> str | None:
    """A model id fit to keep and show: a string of 1–ID_LIMIT characters with no control,
    format, separator or space characters; anything else is no id."""
    if not isinstance(raw, str) or not 0 < len(raw) <= ID_LIMIT:
        return None
    if any(unicodedata.category(c)[0] in "CZ" for c in raw):
        return None
    return raw


def _number(raw: Any) -> int | None:
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 < raw <= _NUMBER_LIMIT:
        return raw
    return None


def _date(raw: Any) -> date | None:
    if not isinstance(raw, str) or len(raw) != 10:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None
