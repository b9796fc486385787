"""The rules a merged configuration must keep, apart from the merge itself (cascade.py): ranges,
what the provider documents for the model (its lifecycle, its output limit, the temperature it
takes), a model the catalog does not know, and what is missing. Each rule adds to the merge's
violations (errors) or warnings; none of them picks a value.

Pure Python: no gRPC, no environment access.
"""

from __future__ import annotations

from typing import Any

from llmconfig_server.resolve.catalog import Catalog, ModelFacts, ProviderSpec
from llmconfig_server.resolve.domain import Origin, Reason, Source, Value, Violation


def provider_phrase(origin: Origin) -> str:
    """`from STIGMER_LLM_PROVIDER`, or `implied by model 'x' in …`, to follow "provider"."""
    return origin.detail if origin.detail.startswith("implied by") else f"from {origin.detail}"


def described(name: str, value: Value, catalog: Catalog) -> str:
    """How a message shows a value: never a secret, at most its hint."""
    shown = catalog.key_hint(str(value.value)) if name == "api_key" else repr(value.value)
    return f"{shown} from {value.detail}"


class Rules:
    """The checks of one resolution, adding to the lists it is given (the merge's own)."""

    def __init__(self, catalog: Catalog, violations: list[Violation], warnings: list[str],
                 ) -> None:
        self.catalog = catalog
        self.violations = violations
        self.warnings = warnings

    def check_ranges(self, spec: ProviderSpec, chosen: dict[str, Any],
                      used: dict[str, Value | None]) -> None:
        max_tokens = chosen["max_tokens"]
        limit = spec.max_tokens_limit
        if max_tokens is not None and (max_tokens < 1 or (limit and max_tokens > limit)):
            self._out_of_range(
                "max_tokens", used["max_tokens"],
                f"max_tokens {max_tokens} is out of range for {spec.name} "
                f"(1–{limit})" if limit else f"max_tokens {max_tokens} must be at least 1",
            )
        temperature = chosen["temperature"]
        low, high = spec.temperature_range
        if temperature is not None and not low <= temperature <= high:
            self._out_of_range(
                "temperature", used["temperature"],
                f"temperature {temperature} is out of range for {spec.name} ({low}–{high})",
            )

    def check_lifecycle(self, spec: ProviderSpec, facts: ModelFacts, used: Value | None,
                         ) -> None:
        """A retired model is refused, naming what replaced it; a deprecated one is served
        with a warning naming the date and the replacement."""
        status = self.catalog.status_of(facts)
        if status not in ("deprecated", "retired"):
            return
        successor = self.catalog.successor(facts)
        instead = self._instead(spec, facts, successor.model, successor.path)
        when = facts.retires_on.isoformat() if facts.retires_on else ""
        if status == "deprecated":
            retiring = f"; {spec.display_name} retires it on {when}" if when else ""
            where = f" (from {used.detail})" if used else ""
            self.warnings.append(f"model {facts.id}{where} is deprecated{retiring}{instead}")
            return
        if used is None:  # a default: _current_default already moved past it, or named none
            self.warnings.append(f"model {facts.id} is retired{instead}")
            return
        on = f" on {when}" if when else ""
        self.violations.append(Violation(
            "model", Reason.MODEL_RETIRED,
            f"{used.subject}: model {facts.id} was retired by {spec.display_name}{on} and no "
            f"longer answers{instead or '; choose another model'}",
            used.source, used.subject,
        ))

    def _instead(self, spec: ProviderSpec, facts: ModelFacts, successor: str | None,
                 path: tuple[str, ...]) -> str:
        if successor is None:
            return ""
        if len(path) > 1:  # its own replacement is retired too
            return f"; its replacement {path[0]} is retired too — use {successor}"
        return f"; use {successor} instead"

    def check_model_rules(self, spec: ProviderSpec, facts: ModelFacts, chosen: dict[str, Any],
                           used: dict[str, Value | None]) -> None:
        """What the provider documents for this model: a lower output limit, or a temperature
        the model does not accept."""
        flagged = {v.field for v in self.violations}  # one error per field: the range's first
        limit = facts.max_output_tokens
        max_tokens = chosen["max_tokens"]
        if limit and max_tokens is not None and max_tokens > limit and "max_tokens" not in flagged:
            if used["max_tokens"] is None:  # the provider's default is above this model's limit
                chosen["max_tokens"] = limit
                self.warnings.append(f"max_tokens lowered to {limit}: {facts.id} writes at "
                                     "most that many")
            else:
                self._out_of_range(
                    "max_tokens", used["max_tokens"],
                    f"max_tokens {max_tokens} is above what {facts.id} writes (1–{limit})")
        temperature = chosen["temperature"]
        if temperature is None or facts.temperature == "range" or "temperature" in flagged:
            return
        if facts.temperature == "default-only":
            fixed = spec.model_temperature_default
            if fixed is not None and temperature == fixed:
                return
            default = f" ({fixed:g})" if fixed is not None else ""
            self._out_of_range(
                "temperature", used["temperature"],
                f"temperature {temperature} is not accepted by {facts.id}: it takes only the "
                f"default{default}; leave temperature unset")
        elif facts.temperature == "reasoning-off":
            where = used["temperature"]
            self.warnings.append(
                f"temperature {temperature}"
                + (f" (from {where.detail})" if where else "")
                + f" is accepted by {facts.id} only with reasoning off (reasoning effort "
                "none); with reasoning on the API refuses it — leave temperature unset unless "
                "the runner turns reasoning off")

    def note_case(self, spec: ProviderSpec, requested_model: str, used: Value | None) -> bool:
        """A model the catalog knows only in another case is passed on as given (names are
        exact), saying which known name it resembles; True when it said so."""
        lowered = self.catalog.case_hint(spec.name, requested_model)
        if lowered is None:
            return False
        where = f" (from {used.detail})" if used else ""
        self.warnings.append(
            f"model {requested_model!r}{where} is passed on as given: names are exact, and "
            f"the {spec.display_name} name it resembles is {lowered!r} (→ "
            f"{self.catalog.canonical_model(spec.name, lowered)}); write it in lower case to "
            "use that")
        return True

    def note_unknown_model(self, spec: ProviderSpec, model: str, used: Value | None) -> None:
        """An id the catalog does not know is served as given, but said, with the closest
        known ids (a typo such as `claude-sonet-4.5` would otherwise fail at the first call)."""
        if not spec.closed_model_list:
            return
        import difflib

        known = sorted(self.catalog.known_ids(spec.name))
        close = difflib.get_close_matches(model, known, n=3, cutoff=0.5)
        where = f" (from {used.detail})" if used else ""
        hint = f"; closest known: {', '.join(close)}" if close else ""
        self.warnings.append(f"model {model!r}{where} is not one {spec.display_name}'s catalog "
                             f"here knows; it is passed on as given{hint}")

    def _out_of_range(self, name: str, value: Value | None, message: str) -> None:
        # Defaults are always in range, so a bad value always has a place to name.
        assert value is not None
        self.violations.append(Violation(
            name, Reason.OUT_OF_RANGE, f"{value.subject}: {message}", value.source, value.subject
        ))

    def missing_model(self, spec: ProviderSpec, provider_origin: Origin) -> Violation:
        fix = "set STIGMER_LLM_MODEL or start the server with --llm-model"
        if provider_origin.source is Source.REQUEST:
            fix += ", or pass overrides.model"
        return Violation(
            "model", Reason.REQUIRED_VALUE_MISSING,
            f"model is required for provider {spec.name} (provider "
            f"{provider_phrase(provider_origin)}): {spec.display_name} has no default model "
            f"in the catalog; {fix}",
            Source.DEFAULT, "STIGMER_LLM_MODEL",
        )

    def missing_key(self, spec: ProviderSpec, provider_origin: Origin) -> Violation:
        fix = key_fix(spec.key_env)
        if provider_origin.source is Source.REQUEST:
            fix += ", or pass overrides.api_key"
        return Violation(
            "api_key", Reason.API_KEY_MISSING,
            f"api_key is required for provider {spec.name} (provider "
            f"{provider_phrase(provider_origin)}); {fix}",
            Source.DEFAULT, spec.key_env or "STIGMER_LLM_API_KEY",
        )


def key_fix(key_env: str | None) -> str:
    """How to give a provider its key, the file first: a variable's value shows in
    `docker inspect` and the process environment, a flag's in `ps` to every user."""
    variable = key_env or "STIGMER_LLM_API_KEY"
    others = " or ".join(v for v in (key_env, "STIGMER_LLM_API_KEY") if v)
    return (f"put the key in a file only the server can read and set {variable}_FILE to its "
            f"path (or set {others})")
