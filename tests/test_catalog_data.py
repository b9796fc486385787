"""The shipped catalog as data: every fact has its source, a provider is one place (catalog entry,
probe, client recipe), and importing the server does not load the catalog."""

from __future__ import annotations

import subprocess
import sys
from datetime import date
from importlib import resources

import pytest

from llmconfig_server.health.probes.registry import PROBES
from llmconfig_server.resolve.catalog import shipped, shipped_entries
from llmconfig_server.resolve.catalog_file import assemble, parse_text

from conftest import ANTHROPIC_KEY, OPENAI_KEY, TRUST_LOOPBACK


def test_the_shipped_catalog_passes_its_schema_and_reads_the_same_without_it():
    # At start the shipped file is read without pydantic (cold start); this is its check.
    text = (resources.files("llmconfig_server.resolve") / "catalog.yaml").read_text()
    checked = parse_text(text, "catalog.yaml")
    trusted = parse_text(text, "catalog.yaml", trusted=True)
    day = date(2026, 12, 2)
    assert assemble(checked, None, day).models == assemble(trusted, None, day).models
    assert assemble(checked, None, day).providers == assemble(trusted, None, day).providers


def test_every_shipped_model_names_the_page_and_the_day_its_facts_come_from():
    for model in shipped_entries().models:
        assert str(model.get("source", "")).startswith("https://"), model["id"]
        assert model.get("checked") and model["checked"] <= date(2026, 12, 2), model["id"]


def test_every_shipped_provider_names_its_source():
    for provider in shipped_entries().providers:
        assert provider.get("source") and provider.get("checked"), provider["name"]


def test_a_provider_in_the_catalog_has_a_probe(serve):
    for spec in shipped().providers.values():
        assert spec.kind in PROBES, f"{spec.name}: no probe for kind {spec.kind}"


@pytest.mark.parametrize("provider", sorted(shipped().providers))
def test_a_provider_in_the_catalog_has_a_client_recipe(serve, provider):
    # A provider is one place: the data, a probe of its kind, and a chat model the client can
    # build from what the server resolves — with no code naming the provider.
    client = serve(args=[TRUST_LOOPBACK],
                   env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "OPENAI_API_KEY": OPENAI_KEY})
    spec = shipped().providers[provider]
    model = None if spec.default_model else "some-model"
    config = client.resolve(provider=provider, model=model, include_secrets=True).config
    module = config.chat_model_class().rpartition(".")[0]
    assert module.startswith("langchain_")
    assert config.chat_model_kwargs()["model"] == config.model


def test_importing_the_server_does_not_load_the_catalog():
    # Cold start: YAML and pydantic cost ~150 ms; a process pays for them on the first build.
    done = subprocess.run([sys.executable, "-c", "import sys, llmconfig_server.app; "
                           "print('yaml' in sys.modules, 'pydantic' in sys.modules)"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", "False"], done.stderr
