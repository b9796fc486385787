"""What a new operator meets in the first hour, said so it can be acted on: a short startup
block, the key file before the flag, where a minted token went, a TLS server named as such, a
close flag or key suggested, YAML mistakes in plain words, and nothing secret echoed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import llmconfig
from llmconfig._langchain import LANGCHAIN_MISSING
from llmconfig_server.__main__ import first_state, token_command
from llmconfig_server.app import runner_report

import pki
from conftest import ANTHROPIC_KEY, OPENAI_KEY, inputs_for, refusal_lines

CANARY = "sk-ant-api03-CANARYcanaryCANARYcanary-k3y9Zq7Wx2Vb"


# -- the startup block ------------------------------------------------------------------------

def test_the_other_modes_runner_settings_are_one_short_line_naming_the_command(workspace):
    (cloud, local) = runner_report(first_state(inputs_for(workspace)))
    assert local == "runner settings (local mode): ok"
    assert cloud.startswith("runner settings (cloud mode) are not usable: temporal.address, ")
    assert cloud.endswith("`llmconfig runner --mode cloud` says how to set them")
    assert len(cloud) < 200


def test_the_own_modes_runner_problems_are_each_given_in_full(workspace):
    lines = runner_report(first_state(inputs_for(
        workspace, {"MODE": "cloud", "ANTHROPIC_API_KEY": ANTHROPIC_KEY})))
    cloud = next(line for line in lines if "(cloud mode)" in line)
    assert "temporal.address is required in cloud mode; set TEMPORAL_SERVICE_ADDRESS" in cloud


# -- keys: the file first ---------------------------------------------------------------------

@pytest.mark.parametrize(("provider", "variable"), [("anthropic", "ANTHROPIC_API_KEY"),
                                                    ("openai", "OPENAI_API_KEY")])
def test_the_missing_key_message_leads_with_the_key_file(serve, provider, variable):
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        serve().resolve(provider=provider)
    fix = caught.value.message.split("; ", 1)[1]
    assert fix.startswith(f"put the key in a file only the server can read and set "
                          f"{variable}_FILE to its path (or set {variable} or "
                          "STIGMER_LLM_API_KEY)")
    assert "--anthropic-key" not in fix and "--llm-api-key" not in fix


def test_a_health_check_without_a_key_names_the_key_file_first(serve):
    health = serve(env={"STIGMER_LLM_PROVIDER": "openai"}).check_health(provider="openai")
    assert health.status.name == "NOT_CONFIGURED"
    assert "set OPENAI_API_KEY_FILE to its path" in health.message


# -- tokens -----------------------------------------------------------------------------------

def test_token_new_says_the_token_went_to_stdout_not_above(capsys):
    assert token_command(["new", "--name", "runner", "--scopes", "resolve"]) == 0
    out, err = capsys.readouterr()
    assert "token above" not in err
    assert "The token went to stdout, once: it is not shown again. Give it to runner" in err
    assert out.strip() not in err


@pytest.mark.parametrize(("scopes", "named"), [
    ("[resolve, secret]", "unknown scope 'secret' (did you mean 'secrets'?)"),
    ("[read]", "unknown scope 'read'"),
    ("[llmc_Zx81kQpa90WmTTyy31Lq4b]", "an entry is not a scope name"),
    ("resolve", "must be a non-empty list"),
])
def test_a_bad_scope_in_the_tokens_file_is_named_with_the_valid_scopes(workspace, scopes,
                                                                        named):
    path = workspace.write("tokens.yaml", f"tokens:\n  - name: runner\n    sha256: {'a' * 64}\n"
                                          f"    scopes: {scopes}\n")
    (_, line) = refusal_lines(workspace, ["--tokens-file", str(path)])
    assert f"tokens[0].scopes: {named}; valid scopes: resolve, secrets, health" in line
    assert "llmc_Zx81" not in line  # what is not a scope name is not echoed (a pasted token?)


# -- the CLI against a TLS server -------------------------------------------------------------

@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> pki.Pki:
    return pki.make(tmp_path_factory.mktemp("pki"))


def tls_target(serve, certs: pki.Pki) -> str:
    client = serve(args=["--tls-cert", str(certs.server_cert), "--tls-key",
                         str(certs.server_key)],
                   client_options={"ca_file": str(certs.ca)})
    return client.target


def test_the_cli_without_ca_file_says_a_tls_server_needs_it(serve, certs):
    target = tls_target(serve, certs)
    done = subprocess.run([sys.executable, "-m", "llmconfig", "resolve", "--target", target,
                           "--timeout", "2"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 3
    assert f"the service at {target} uses TLS and this client connected without it" \
        in done.stderr
    assert "--ca-file" in done.stderr
    assert "start the service" not in done.stderr


def test_the_client_without_ca_file_gets_tls_required(serve, certs):
    target = tls_target(serve, certs)
    with llmconfig.Client(target, timeout=2) as client, \
            pytest.raises(llmconfig.ServiceUnavailable) as caught:
        client.resolve()
    assert caught.value.reason == "TLS_REQUIRED"


def test_a_plaintext_server_that_is_down_is_still_unreachable(serve):
    target = serve().target
    with llmconfig.Client(target, timeout=2, ca_file=None) as client:
        assert client.resolve().config.provider == "ollama"  # plaintext: no TLS advice needed
    done = subprocess.run([sys.executable, "-m", "llmconfig", "resolve", "--target",
                           "127.0.0.1:9", "--timeout", "1"], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 3
    assert "start the service" in done.stderr and "uses TLS" not in done.stderr


# -- flags and keys: the close one ------------------------------------------------------------

@pytest.mark.parametrize(("argv", "hint"), [
    (["--model", "x"], "--model: did you mean --llm-model or --mode?"),
    (["--provider", "ollama"], "--provider: did you mean --llm-provider?"),
    (["--listn", "127.0.0.1:0"], "--listn: did you mean --listen?"),
])
def test_an_unknown_flag_suggests_the_close_one(argv, hint):
    done = subprocess.run([sys.executable, "-m", "llmconfig_server", *argv],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert hint in done.stderr
    assert "unrecognized arguments" in done.stderr
    # No abbreviations: argparse read `--model x` as --models-refresh-interval x.
    assert "--models-refresh-interval" not in done.stderr.splitlines()[-1]


def test_a_misspelt_config_key_suggests_the_close_one(workspace):
    path = workspace.write("config.yaml", "llm:\n  provder: anthropic\n")
    (_, line) = refusal_lines(workspace, ["--config", str(path)])
    assert f"{path}:2:3 (named by --config): llm.provder: unknown key (did you mean provider? " \
        "allowed here: api_key, base_url, max_tokens, model, provider, temperature)" in line


def test_a_misspelt_tokens_file_key_suggests_the_close_one(workspace):
    path = workspace.write("tokens.yaml", f"tokens:\n  - name: runner\n    sha256: {'a' * 64}\n"
                                          "    scoeps: [resolve]\n")
    (_, line) = refusal_lines(workspace, ["--tokens-file", str(path)])
    assert "tokens[0]: unknown key scoeps (did you mean scopes?)" in line


# -- YAML mistakes in plain words -------------------------------------------------------------

@pytest.mark.parametrize("text", ["llm:\n\tprovider: anthropic\n",
                                  "llm:\n  provider: anthropic\n\tmodel: x\n"],
                         ids=["tab under a key", "tab after a key"])
def test_a_tab_in_the_indentation_says_use_spaces_with_line_and_column(workspace, text):
    path = workspace.write("config.yaml", text)
    (_, line) = refusal_lines(workspace, ["--config", str(path)])
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+ \(named by --config\): invalid YAML: "
                     "tabs are not allowed for indentation in YAML; use spaces$", line)


def test_key_colon_value_without_a_space_names_the_section_and_never_the_value(workspace):
    path = workspace.write("config.yaml", f"llm:\n  api_key:{CANARY}\n")
    lines = refusal_lines(workspace, ["--config", str(path)])
    assert lines[1] == (
        f"  - {path}:2:3 (named by --config): llm: expected a mapping (keys of api_key, "
        "base_url, max_tokens, model, provider, temperature), got text; a key needs a space "
        "after its colon (`key: value`)")
    assert "llmsection" not in "\n".join(lines).lower()
    assert CANARY[-8:] not in "\n".join(lines)


def test_a_section_given_a_number_says_a_mapping_was_expected(workspace):
    path = workspace.write("config.yaml", "local:\n  llm: 3\n")
    (_, line) = refusal_lines(workspace, ["--config", str(path)])
    assert "local.llm: expected a mapping (keys of api_key," in line and "got a number" in line


# -- pointers that lead somewhere -------------------------------------------------------------

def test_the_langchain_import_error_names_the_install_lines_of_the_docs():
    text = LANGCHAIN_MISSING.format(module="langchain_anthropic")
    assert "pip install '/path/to/llmconfig[langchain]'" in text
    assert "pip install 'llmconfig[langchain] @ git+https://github.com/stigmer/llmconfig.git'" \
        in text
    assert "docs/client.md" in text


def test_the_package_docstring_resolves_as_it_says(serve):
    doc = llmconfig.__doc__ or ""
    asked = re.search(r'client\.resolve\(model="([^"]+)"\)', doc)
    shown = re.search(r"resolved\.config\.model\s+# '([^']+)'", doc)
    assert asked and shown
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "OPENAI_API_KEY": OPENAI_KEY})
    assert client.resolve(model=asked.group(1)).config.model == shown.group(1)
    assert f'chat_model(model="{asked.group(1)}")' in doc


def test_no_message_in_the_code_sends_readers_to_the_readme():
    done = subprocess.run(["grep", "-rn", "--include=*.py", "README", "server", "client"],
                          capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent)
    assert done.stdout == ""
