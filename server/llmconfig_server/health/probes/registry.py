"""The probe for each kind of provider (the catalog's `kind`), and the probe's signature."""


from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import MappingProxyType

from llmconfig_server.health.probes import anthropic, ollama, openai, openai_compatible
from llmconfig_server.health.probes._common import Upstream
from llmconfig_server.resolve.domain import ProbeTarget, Verdict

Probe = Callable[[Upstream, ProbeTarget], Awaitable[Verdict]]

PROBES: MappingProxyType[str, Probe] = MappingProxyType({
    "anthropic": anthropic.probe,
    "ollama": ollama.probe,
    "openai": openai.probe,
    "openai-compatible": openai_compatible.probe,
})

__all__ = ["PROBES", "Probe", "ProbeTarget", "Upstream", "Verdict"]
