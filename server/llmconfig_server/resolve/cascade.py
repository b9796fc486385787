"""Layers → one resolved, validated configuration with the origin of every value.

Order, highest first: request overrides > flags > environment > config files (llmconfig's own:
mode section, then common section; then Stigmer's) > smart default > mode defaults > provider
defaults.

Two consistency rules shape the merge:
- the provider comes from the highest layer that names one, either directly or through a model
  that belongs to a provider (`claude-*`, `gpt-*`, `name:tag`, `ollama:…`);
- a model, base URL or key that belongs to another provider is not inherited from a layer below
  the one that chose the provider (dropped, with a warning); at the same layer or above, it is a
  contradiction and an error.

Pure Python: no gRPC, no environment access.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any, Final

from llmconfig_server.resolve.catalog import MODE_DEFAULTS, Catalog, ProviderSpec, shipped
from llmconfig_server.resolve.domain import (
    FIELDS,
    ConfigError,
    Layer,
    Origin,
    Reason,
    Resolution,
    Source,
    Value,
    Violation,
)
from llmconfig_server.resolve.rules import Rules, described, provider_phrase

_DEFAULT_LAYER: Final = 1_000  # ranks below every real layer


class _Merge:
    def __init__(self, mode: Value, layers: Sequence[Layer], require_key: bool,
                 revision_key: bytes, catalog: Catalog) -> None:
        self.mode: str = mode.value
        self.require_key = require_key
        self.revision_key = revision_key
        self.catalog = catalog
        self.owner_of: dict[str, Callable[[str], str | None]] = {
            "model": catalog.provider_of_model,
            "base_url": catalog.provider_of_base_url,
            "api_key": catalog.provider_of_key,
        }
        self.layers = [layer for layer in layers if not layer.is_empty()]
        self.warnings: list[str] = [w for layer in self.layers for w in layer.warnings]
        # Inputs of these layers that could not be parsed (or a file that could not be read):
        # listed first, with what the cascade finds in the rest.
        self.unparsed: list[Violation] = list(dict.fromkeys(
            p for layer in self.layers if layer.problems or layer.broken
            for p in layer.problems_for(FIELDS)))
        self.violations: list[Violation] = []
        self.rules = Rules(catalog, self.violations, self.warnings)
        self.origins: list[Origin] = [Origin("mode", mode.source, mode.detail)]

    # -- provider -------------------------------------------------------------------------------

    def provider(self) -> tuple[str, Origin, int]:
        """The provider, its origin and the rank of the layer that chose it."""
        for rank, layer in enumerate(self.layers):
            named = layer.generic.get("provider")
            model = layer.generic.get("model")
            implied = self.catalog.provider_of_model(model.value) if model else None
            if named:
                # An OpenAI-compatible server serves whatever it calls its models
                # (Qwen/Qwen3-Coder-…, gpt-oss-20b): a model's shape claims nothing there.
                if model and implied and implied != named.value and not self._open(named.value):
                    self._mismatch("model", model, implied, named.value,
                                   f"provider from {named.detail}")
                return named.value, Origin("provider", named.source, named.detail), rank
            if model and implied:
                detail = f"implied by model {model.value!r} in {model.detail}"
                return implied, Origin("provider", model.source, detail), rank
        anthropic_key = self._anthropic_key()
        if self.mode == "local" and anthropic_key:
            detail = f"smart default: local mode with an Anthropic key ({anthropic_key.detail})"
            return "anthropic", Origin("provider", Source.DEFAULT, detail), _DEFAULT_LAYER
        provider = MODE_DEFAULTS[self.mode].provider
        return provider, Origin("provider", Source.DEFAULT, f"{self.mode} mode default"), \
            _DEFAULT_LAYER

    def _anthropic_key(self) -> Value | None:
        """An Anthropic-scoped key anywhere, or a generic key with Anthropic's prefix."""
        for layer in self.layers:
            if scoped := layer.scoped.get("anthropic", {}).get("api_key"):
                return scoped
            generic = layer.generic.get("api_key")
            if generic and self.catalog.provider_of_key(str(generic.value)) == "anthropic":
                return generic
        return None

    # -- the other fields -----------------------------------------------------------------------

    def pick(self, name: str, provider: str, provider_rank: int, provider_origin: Origin,
             ) -> Value | None:
        """The highest value for `name` that fits `provider`."""
        owner_of = self.owner_of.get(name)
        if name != "api_key" and self._open(provider):
            owner_of = None  # only a key's owner matters to an OpenAI-compatible server
        for rank, layer in enumerate(self.layers):
            for candidate in layer.candidates(name, provider):
                owner = owner_of(str(candidate.value)) if owner_of else None
                if owner is None or owner == provider:
                    return candidate
                if rank <= provider_rank:
                    self._mismatch(name, candidate, owner, provider,
                                   f"provider {provider_phrase(provider_origin)}")
                else:
                    self.warnings.append(
                        f"ignored {name} {described(name, candidate, self.catalog)}: it "
                        f"belongs to {owner}, and "
                        f"the provider is {provider} ({provider_phrase(provider_origin)})"
                    )
        return None

    def _mismatch(self, field_name: str, value: Value, owner: str, provider: str, why: str,
                  ) -> None:
        if any(v.reason is Reason.PROVIDER_MISMATCH and v.subject == value.subject
               for v in self.violations):
            return  # the provider's choice and the field's pick see the same clash: say it once
        if value.source is not Source.REQUEST:
            fix = f"remove it, or name provider {owner} at the same level"
        elif "overrides.provider" in why:  # the caller named both: one of them must change
            fix = f"use a {field_name} of {provider}, or set overrides.provider to {owner}"
        else:
            fix = "set overrides.provider too, or drop the value"
        self.violations.append(Violation(
            field_name, Reason.PROVIDER_MISMATCH,
            f"{field_name} {described(field_name, value, self.catalog)} belongs to {owner}, but "
            f"the provider is {provider} ({why}); {fix}",
            value.source, value.subject,
        ))

    # -- defaults -------------------------------------------------------------------------------

    def default(self, name: str, spec: ProviderSpec) -> tuple[Any, Origin]:
        if MODE_DEFAULTS[self.mode].provider == spec.name:
            detail = f"{self.mode} mode default"
        else:
            detail = f"{spec.name} provider default"
        value = {
            "model": spec.default_model,
            "base_url": spec.default_base_url,
            "max_tokens": spec.default_max_tokens,
            "temperature": spec.default_temperature,
        }[name]
        if name == "model" and value:
            value, detail = self._current_default(spec, str(value), detail)
        return value, Origin(name, Source.DEFAULT, detail)

    def _current_default(self, spec: ProviderSpec, model: str, detail: str) -> tuple[str, str]:
        """A default the provider has deprecated or retired gives way to its replacement, and
        the origin says so: `cloud mode default (claude-sonnet-4.5 retired 2026-11-30 →
        claude-sonnet-5-5)`."""
        facts = self.catalog.model(spec.name, self.catalog.canonical_model(spec.name, model))
        if facts is None:
            return model, detail
        status = self.catalog.status_of(facts)
        if status not in ("deprecated", "retired"):
            return model, detail
        successor = self.catalog.successor(facts)
        if successor.model is None:
            return model, detail  # nothing named to move to: served as it is, with a warning
        when = f" {facts.retires_on.isoformat()}" if facts.retires_on else ""
        said = f"retired{when}" if status == "retired" else f"is deprecated, retiring{when}"
        return successor.model, f"{detail} ({model} {said} → {successor.model})"

    def _past_retirement(self, spec: ProviderSpec, picked: Value) -> Value:
        """A model written on the user's behalf (Value.gives_way) that the provider has retired
        is replaced by its successor, said in the origin and a warning."""
        model = str(picked.value)
        facts = self.catalog.model(spec.name, self.catalog.canonical_model(spec.name, model))
        if facts is None or self.catalog.status_of(facts) != "retired":
            return picked
        successor = self.catalog.successor(facts)
        if successor.model is None:
            return picked  # nothing to move to: refused as retired, naming the fix
        when = f" {facts.retires_on.isoformat()}" if facts.retires_on else ""
        note = (f"model {model} (from {picked.detail}) was retired by {spec.display_name}{when}; "
                f"using its replacement {successor.model} — write that (or another model) "
                "there to keep this choice and silence this warning")
        return replace(picked, value=successor.model,
                       detail=f"{picked.detail} ({model} retired{when} → {successor.model})",
                       notes=(*picked.notes, note), gives_way=False)

    # -- the whole thing ------------------------------------------------------------------------

    def resolve(self) -> Resolution:
        provider, provider_origin, rank = self.provider()
        spec = self.catalog.providers[provider]
        self.origins.append(provider_origin)
        chosen: dict[str, Any] = {}
        used: dict[str, Value | None] = {}
        for name in ("model", "base_url", "api_key", "max_tokens", "temperature"):
            picked = self.pick(name, provider, rank, provider_origin)
            used[name] = picked
            if picked is not None and picked.gives_way and name == "model":
                picked = self._past_retirement(spec, picked)
            if picked is not None:
                chosen[name] = picked.value
                self.origins.append(Origin(name, picked.source, picked.detail))
                self.warnings.extend(picked.notes)
            elif name == "api_key":
                chosen[name] = ""
                self.origins.append(self._missing_key_origin(spec))
            else:
                chosen[name], origin = self.default(name, spec)
                self.origins.append(origin)

        requested_model = str(chosen["model"] or "")
        model = self.catalog.canonical_model(provider, requested_model) if requested_model \
            else ""
        if not model:
            self.violations.append(self.rules.missing_model(spec, provider_origin))
        base_url = self._native_root(spec, chosen["base_url"], used["base_url"])
        self.rules.check_ranges(spec, chosen, used)
        facts = self.catalog.model(provider, model)
        if facts is not None:
            self.rules.check_lifecycle(spec, facts, used["model"])
            self.rules.check_model_rules(spec, facts, chosen, used)
        elif model and not self.rules.note_case(spec, requested_model, used["model"]):
            self.rules.note_unknown_model(spec, model, used["model"])
        if spec.needs_key and self.require_key and not chosen["api_key"]:
            self.violations.append(self.rules.missing_key(spec, provider_origin))
        if self.unparsed:
            # Not what follows from an unparsed field itself (a key file that cannot be read
            # is not also a missing key).
            failed = {v.field for v in self.unparsed}
            raise ConfigError([*self.unparsed,
                               *(v for v in self.violations if v.field not in failed)])
        if self.violations:
            raise ConfigError(self.violations)

        openai_base_url = "" if spec.openai_suffix is None else base_url + spec.openai_suffix
        config = (self.mode, provider, model, base_url, openai_base_url, chosen["api_key"],
                  chosen["max_tokens"], chosen["temperature"])
        return Resolution(
            mode=self.mode,
            provider=provider,
            model=model,
            requested_model=requested_model,
            base_url=base_url,
            openai_base_url=openai_base_url,
            api_key=chosen["api_key"],
            api_key_hint=self.catalog.key_hint(chosen["api_key"]),
            max_tokens=chosen["max_tokens"],
            temperature=chosen["temperature"],
            origins=tuple(self.origins),
            warnings=tuple(dict.fromkeys(self.warnings)),
            revision=revision_of(config, self.revision_key),
        )

    def _open(self, provider: str) -> bool:
        spec = self.catalog.providers.get(provider)
        return spec is not None and spec.openai_compatible

    def _native_root(self, spec: ProviderSpec, url: str, used: Value | None) -> str:
        suffix = spec.strip_suffix
        if suffix and url.endswith(suffix):
            stripped = url[: -len(suffix)]
            where = used.detail if used else "default"
            self.warnings.append(
                f"base_url {url} (from {where}) ends in {suffix}; using {stripped}, the native "
                f"{spec.display_name} API root ({spec.display_name} clients add {suffix} "
                "themselves; the OpenAI-compatible root is reported as openai_base_url)"
            )
            return stripped
        return url

    def _missing_key_origin(self, spec: ProviderSpec) -> Origin:
        if spec.needs_key:
            return Origin("api_key", Source.DEFAULT, "not set")
        return Origin("api_key", Source.DEFAULT, f"{spec.name} needs no key")


def resolve(mode: Value, layers: Sequence[Layer], *, require_key: bool = True,
            revision_key: bytes, catalog: Catalog | None = None) -> Resolution:
    """Resolve `layers` (highest first) for `mode`; raise ConfigError with every violation.

    `require_key=False` resolves a provider that needs a key even without one (a health check
    reports that as NOT_CONFIGURED rather than failing)."""
    return _Merge(mode, layers, require_key, revision_key, catalog or shipped()).resolve()


@lru_cache(maxsize=4096)
def revision_of(config: tuple[Any, ...], revision_key: bytes) -> str:
    """Equal configs give equal revisions. The key enters as an HMAC under `revision_key`, a
    secret of the server's: a plain digest would let a caller who may not see the key test
    guesses of it offline against the revision it does see."""
    *head, key, max_tokens, temperature = config
    key_digest = secret_digest(key, revision_key) if key else ""
    text = "\x1f".join(map(str, (*head, key_digest, max_tokens, temperature)))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def secret_digest(value: str, revision_key: bytes) -> str:
    """How a secret enters a revision: keyed, so the revision cannot confirm a guess."""
    return hmac.new(revision_key, value.encode("utf-8", "surrogateescape"),
                    hashlib.sha256).hexdigest()
