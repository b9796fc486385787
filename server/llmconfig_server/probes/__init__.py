"""Provider probes: one small module per provider, each `async def probe(http, target)`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import MappingProxyType

import httpx

from ..domain import ProbeTarget, Verdict
from . import anthropic, ollama, openai

Probe = Callable[[httpx.AsyncClient, ProbeTarget], Awaitable[Verdict]]

PROBES: MappingProxyType[str, Probe] = MappingProxyType({
    "anthropic": anthropic.probe,
    "ollama": ollama.probe,
    "openai": openai.probe,
})

__all__ = ["PROBES", "Probe", "ProbeTarget", "Verdict"]
