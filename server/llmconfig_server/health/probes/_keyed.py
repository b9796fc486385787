"""The shape shared by hosted APIs: with a key, GET the model's own resource. A 200 with the
provider's model object means the key works and the model exists; everything else maps to a
status and a sentence with the fix. Each provider module supplies only its own facts.

The model goes into the URL as one percent-encoded path segment (`model_segment`), so whatever
it holds (`/`, `..`, `?`), the request stays on the model's own resource; and a key that no
HTTP header can carry is reported, not sent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from llmconfig_server.health.probes._common import (
    Answer,
    ProbeFailed,
    Upstream,
    clean_text,
    error_text,
    get,
    json_or_fail,
    retry_after,
    status_for_http_error,
)
from llmconfig_server.resolve.domain import HealthStatus, ProbeTarget, Verdict


def model_segment(model: str) -> str:
    """`model` as one path segment: every reserved character percent-encoded."""
    return quote(model, safe="")


def header_safe(key: str) -> bool:
    """Whether `key` can be sent in an HTTP header as it is: printable ASCII, no spaces."""
    return key.isascii() and key.isprintable() and " " not in key


@dataclass(frozen=True, slots=True)
class HostedAPI:
    display_name: str  # "Anthropic"
    key_variables: str  # how to configure a key, for NOT_CONFIGURED
    keys_page: str
    status_page: str
    model_url: Callable[[ProbeTarget], str]
    headers: Callable[[ProbeTarget], dict[str, str]]
    is_model: Callable[[Any], bool]
    model_hint: str  # what to do about an unknown model
    billing_page: str = ""  # where the account's credit and payment method are
    # What the provider says (in an error's code, type or message) when it refuses a request
    # for where it comes from rather than for its key.
    region_words: tuple[str, ...] = ()
    regions_page: str = ""

    @property
    def what(self) -> str:
        return f"the {self.display_name} API"

    def not_configured(self) -> Verdict:
        return Verdict(HealthStatus.NOT_CONFIGURED,
                       f"No {self.display_name} API key is configured — {self.key_variables}")

    async def probe(self, http: Upstream, target: ProbeTarget) -> Verdict:
        if not target.api_key:
            return self.not_configured()  # no network call without a key
        if not header_safe(target.api_key):
            return Verdict(HealthStatus.UNAUTHENTICATED, (
                f"The {self.display_name} key ({target.key_hint}, from {target.key_origin}) "
                "holds characters an HTTP header cannot carry (a byte-order mark, a line break, "
                f"a space or another non-ASCII or control character) — write the key alone, "
                f"as printable ASCII, in {target.key_origin}"))
        if target.model in ("", ".", ".."):  # as a path segment it would leave the model's URL
            return Verdict(HealthStatus.MODEL_NOT_FOUND,
                           f"{target.model!r} is not a model id — {self.model_hint}")
        url = self.model_url(target)
        try:
            response = await get(http, url, target, self.what, self.headers(target))
            if not response.is_success:
                return self._failure(response, target)
            body = json_or_fail(response, target, self.what)
            if not self.is_model(body):
                raise ProbeFailed(Verdict(
                    HealthStatus.BAD_RESPONSE,
                    f"{url} answered {response.status_code} without {self.display_name}'s model "
                    f"object — is {target.base_url} really {self.what}?",
                ))
        except ProbeFailed as failed:
            return failed.verdict
        model_id = clean_text(str(body["id"]))
        return Verdict(
            HealthStatus.HEALTHY,
            f"{self.display_name} accepted the key ({target.key_hint}, from "
            f"{target.key_origin}) and has model {model_id}",
            True, (model_id,),
        )

    def _failure(self, response: Answer, target: ProbeTarget) -> Verdict:
        code = response.status_code
        said = error_text(response, target.api_key)
        detail = f" ({said})" if said else ""
        status = status_for_http_error(code) or HealthStatus.BAD_RESPONSE
        key = f"The {self.display_name} key ({target.key_hint}, from {target.key_origin})"
        name = self.display_name
        if quota := self._quota(code, said, key, detail):
            return quota  # not a rate limit: waiting does not help, paying does
        if code == 403:
            return Verdict(HealthStatus.UNAUTHENTICATED, self._forbidden(said, key, detail))
        if status is HealthStatus.UNAUTHENTICATED:
            message = (f"{key} was rejected{detail} — create or copy a valid key at "
                       f"{self.keys_page} and update {target.key_origin}")
        elif status is HealthStatus.MODEL_NOT_FOUND:
            message = f"{name} has no model {target.model}{detail} — {self.model_hint}"
        elif status is HealthStatus.RATE_LIMITED:
            message = f"{name} is rate limiting this key{retry_after(response)}{detail}"
        elif status is HealthStatus.UNAVAILABLE:
            message = (f"{name} answered {code}{detail} — the API is overloaded or failing; "
                       f"retry shortly ({self.status_page})")
        else:
            message = f"{name} answered {code}{detail} to {response.url}"
        return Verdict(status, message)

    def _quota(self, code: int, said: str, key: str, detail: str) -> Verdict | None:
        """A valid key on an account that cannot pay: Anthropic's 402 `billing_error`,
        OpenAI's 429 `insufficient_quota`."""
        if code != 402 and not (code == 429 and "insufficient_quota" in said):
            return None
        where = f" at {self.billing_page}" if self.billing_page else ""
        return Verdict(HealthStatus.QUOTA_EXCEEDED, (
            f"{key} is valid, but the {self.display_name} account cannot pay for requests"
            f"{detail} — add credit or a payment method{where}; retrying will not help"))

    def _forbidden(self, said: str, key: str, detail: str) -> str:
        """403: the key works but may not do this — or the provider refuses where the request
        comes from, which no key fixes."""
        lowered = said.lower()
        if any(word in lowered for word in self.region_words):
            page = f" (see {self.regions_page})" if self.regions_page else ""
            return (f"{self.display_name} refuses requests from the country, region or "
                    f"territory this server runs in{detail} — the key is not the problem; run "
                    f"the server where {self.display_name} is available{page}")
        return (f"{key} is valid but lacks permission for this{detail} — a restricted key needs "
                f"read access to models; give it that at {self.keys_page}, or use another key")
