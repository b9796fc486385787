"""The startup block: the active configuration of each mode and where every value came from.
Never a key (at most its hint), never the credentials in a URL."""

from __future__ import annotations

from collections.abc import Sequence

from llmconfig_server.resolve.catalog import MODES
from llmconfig_server.resolve.domain import ConfigError, Resolution
from llmconfig_server.sources.resolver import Resolver
from llmconfig_server.support.redact import redact_text, redact_url


def startup_report(resolver: Resolver, addresses: Sequence[str],
                   notes: Sequence[str] = ()) -> str:
    sources = resolver.sources
    mode = resolver.default_mode
    lines = [f"serving on {addresses[0]} (mode {mode}, from {sources.mode.detail})"]
    lines += [f"  also serving on {address}" for address in addresses[1:]]
    lines += [f"  {note}" for note in notes]
    files = [f"{shown} ({whose})" for shown, whose in (
        (sources.file_display, "llmconfig's own"), (sources.stigmer_file, "Stigmer's")) if shown]
    lines.append(f"  config files: {', '.join(files) or 'none found'}")
    base = resolver.base()
    if isinstance(base, Resolution):
        lines += _table(base)
    for other in MODES:
        if other == mode:
            continue
        outcome = resolver.base(other)
        if isinstance(outcome, ConfigError):
            lines.append(f"  {other} mode (on request) is not usable: {redact_text(str(outcome))}")
        else:
            lines.append(f"  {other} mode (on request): {outcome.provider} {outcome.model}")
    return "\n".join(lines)


def _table(resolution: Resolution) -> list[str]:
    shown = {
        "mode": resolution.mode,
        "provider": resolution.provider,
        "model": resolution.model
        + ("" if resolution.model == resolution.requested_model
           else f" (asked: {resolution.requested_model})"),
        "base_url": redact_url(resolution.base_url),
        "api_key": resolution.api_key_hint or "(none)",
        "max_tokens": _or_default(resolution.max_tokens),
        "temperature": _or_default(resolution.temperature),
    }
    width = max(len(v) for v in shown.values())
    rows = [
        f"  {o.field:<12} {shown[o.field]:<{width}}  {o.source.name.lower():<8} "
        f"{redact_text(o.detail)}"
        for o in resolution.origins
    ]
    return rows + [f"  warning: {redact_text(w)}" for w in resolution.warnings]


def _or_default(value: object) -> str:
    return "(provider default)" if value is None else str(value)
