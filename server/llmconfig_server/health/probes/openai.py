"""OpenAI: GET {base}/models/{model} with a Bearer key. No tokens."""

from __future__ import annotations

from typing import Any

from llmconfig_server.health.probes._keyed import HostedAPI, model_segment
from llmconfig_server.resolve.rules import key_fix


def _is_model(body: Any) -> bool:
    return isinstance(body, dict) and bool(body.get("id"))


API = HostedAPI(
    display_name="OpenAI",
    key_variables=key_fix("OPENAI_API_KEY"),
    keys_page="https://platform.openai.com/api-keys",
    status_page="https://status.openai.com",
    model_url=lambda t: f"{t.base_url}/models/{model_segment(t.model)}",
    headers=lambda t: {"Authorization": f"Bearer {t.api_key}"},
    is_model=_is_model,
    model_hint="check the name, and that this key's organization has access to it",
    billing_page="https://platform.openai.com/settings/organization/billing",
    region_words=("unsupported_country_region_territory", "country, region, or territory"),
    regions_page="https://platform.openai.com/docs/supported-countries",
)
probe = API.probe
