"""Provider probes: one small module per kind of provider, each `async def probe(http, target)`,
keyed by the catalog's `kind` (a provider declared as data is `openai-compatible`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import MappingProxyType

from ..domain import ProbeTarget, Verdict
from . import anthropic, ollama, openai, openai_compatible
from ._common import Upstream

Probe = Callable[[Upstream, ProbeTarget], Awaitable[Verdict]]

PROBES: MappingProxyType[str, Probe] = MappingProxyType({
    "anthropic": anthropic.probe,
    "ollama": ollama.probe,
    "openai": openai.probe,
    "openai-compatible": openai_compatible.probe,
})

__all__ = ["PROBES", "Probe", "ProbeTarget", "Upstream", "Verdict"]
