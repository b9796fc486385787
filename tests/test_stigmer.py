"""Speaking Stigmer: its own ~/.stigmer/config.yaml, exactly as the Stigmer CLI writes it (Go's
yaml.v3: a header comment, 4-space indentation, keys in struct order), read in Stigmer's schema
in a real HOME; llmconfig's own file beside it; the daemon's port and execution settings; and
the names Stigmer gives models. Each test pins one row of the contract's tables."""

from __future__ import annotations

import os
import time

import pytest

import llmconfig

from conftest import ANTHROPIC_KEY, startup_refusal

STIGMER = "~/.stigmer/config.yaml"
OWN = "~/.stigmer/llmconfig.yaml"
# What config.Save() writes before yaml.Marshal's output.
HEADER = ("# Stigmer CLI Configuration\n"
          "# For configuration options and examples, see:\n"
          "# https://github.com/stigmer/stigmer/blob/main/docs/cli/configuration.md\n\n")


def cli_file(provider: str = "ollama", model: str = "qwen2.5-coder:7b", api_key: str = "",
             base_url: str = "http://localhost:11434", backend_type: str = "local",
             temporal: str = "            managed: true\n",
             execution: str = ("            mode: local\n            auto_pull: true\n"
                               "            cleanup: true\n            ttl: 3600\n"),
             extra: str = "") -> str:
    """~/.stigmer/config.yaml as `stigmer server` writes it on first run (GetDefault()), with
    the fields of config.LLMConfig in struct order (provider, model, api_key, base_url) and
    yaml.v3's omitempty (no api_key line without a key)."""
    key = f"            api_key: {api_key}\n" if api_key else ""
    return (HEADER + "backend:\n"
            f"    type: {backend_type}\n"
            "    local:\n"
            "        llm:\n"
            f"            provider: {provider}\n"
            f"            model: {model}\n"
            f"{key}"
            f"            base_url: {base_url}\n"
            "        temporal:\n"
            f"{temporal}"
            "        execution:\n"
            f"{execution}"
            f"{extra}")


DEFAULT_FILE = cli_file()


# -- the file the CLI writes never stops the server ------------------------------------------

def test_the_file_stigmer_server_writes_on_first_run_starts_the_server(server_process, workspace):
    workspace.write(STIGMER, DEFAULT_FILE)
    handle = server_process()
    handle.wait_for(r"config files: ~/.stigmer/config.yaml \(Stigmer's\)")
    with llmconfig.Client(handle.target) as client:
        resolved = client.resolve()
    assert (resolved.config.provider, resolved.config.model) == ("ollama", "qwen2.5-coder:7b")
    assert resolved.warnings == ()


def test_a_model_the_cli_wrote_that_has_since_retired_gives_way_and_starts(server_process,
                                                                              workspace):
    # Stigmer's CLI saves its own default (claude-sonnet-4.5, retired 2026-11-30) for a user
    # who only chose the provider: the file it wrote must not stop the server.
    workspace.write(STIGMER, cli_file(provider="anthropic", model="claude-sonnet-4.5",
                                      api_key=ANTHROPIC_KEY,
                                      base_url="https://api.anthropic.com"))
    handle = server_process()
    with llmconfig.Client(handle.target) as client:
        resolved = client.resolve()
    assert resolved.config.model == "claude-sonnet-5-5"
    assert resolved.origin("model").detail == ("~/.stigmer/config.yaml: backend.local.llm.model"
                                               " (claude-sonnet-4.5 retired 2026-11-30 → "
                                               "claude-sonnet-5-5)")
    assert any("claude-sonnet-4.5" in w and "retired" in w and "claude-sonnet-5-5" in w
               for w in resolved.warnings)


def test_a_retired_model_a_person_wrote_in_llmconfigs_file_is_refused(serve):
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY},
                   files={"~/.stigmer/llmconfig.yaml": "llm:\n  model: claude-sonnet-4.5\n"})
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        client.resolve()
    assert "retired" in str(caught.value) and "claude-sonnet-5-5" in str(caught.value)


def test_origins_name_stigmers_file_and_its_key_path(serve):
    resolved = serve(files={STIGMER: cli_file(model="llama3.2:3b")}).resolve()
    assert resolved.config.model == "llama3.2:3b"
    assert resolved.origin("model").detail == "~/.stigmer/config.yaml: backend.local.llm.model"
    assert resolved.origin("base_url").detail == \
        "~/.stigmer/config.yaml: backend.local.llm.base_url"


def test_stigmers_api_key_is_local_modes_key(serve):
    text = cli_file(provider="anthropic", model="claude-sonnet-5.5", api_key=ANTHROPIC_KEY,
                    base_url="https://api.anthropic.com")
    resolved = serve(files={STIGMER: text}).resolve()
    assert (resolved.config.provider, resolved.config.model) == (
        "anthropic", "claude-sonnet-5-5")
    assert resolved.config.api_key_present and resolved.config.api_key_hint == "sk-ant-…f2c9"
    assert resolved.origin("api_key").detail == "~/.stigmer/config.yaml: backend.local.llm.api_key"


def test_a_provider_key_in_the_environment_beats_the_files_key(serve):
    other = ANTHROPIC_KEY.replace("f2c9", "0000")
    text = cli_file(provider="anthropic", model="claude-sonnet-5.5", api_key=other,
                    base_url="https://api.anthropic.com")
    resolved = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}, files={STIGMER: text}).resolve()
    assert resolved.config.api_key_hint == "sk-ant-…f2c9"
    assert resolved.origin("api_key").detail == "ANTHROPIC_API_KEY"


def test_a_key_llmconfig_does_not_know_is_one_warning_and_never_fatal(server_process, workspace):
    workspace.write(STIGMER, cli_file(extra="        gpu: nvidia\n    tracing: on\n"))
    handle = server_process()
    with llmconfig.Client(handle.target) as client:
        resolved = client.resolve()
    assert resolved.config.model == "qwen2.5-coder:7b"
    assert resolved.warnings == ("~/.stigmer/config.yaml: ignoring backend.local.gpu, "
                                 "backend.tracing: not Stigmer settings llmconfig knows",)


def test_stigmers_own_keys_that_are_not_ours_are_ignored_silently(serve):
    text = cli_file(extra=(
        "        endpoint: localhost:7234\n        data_dir: /home/me/.stigmer/data\n"
        "    cloud:\n        endpoint: api.stigmer.ai:443\n        token: stk_TESTtoken\n"
        "        org_id: acme\ncontext:\n    organization: acme\n    environment: prod\n"))
    text = text.replace("            managed: true\n",
                        "            managed: true\n            version: 1.5.1\n")
    client = serve(files={STIGMER: text})
    assert client.resolve().warnings == ()
    assert client.resolve_runner().warnings == ()


def test_zero_values_the_cli_writes_mean_unset(serve):
    # `stigmer config set llm.model llama3.2` on a file without an llm section writes
    # provider: "" (no omitempty on Provider); Stigmer then resolves the default provider.
    text = cli_file(provider='""', model="llama3.2", execution=(
        '            mode: ""\n            auto_pull: true\n            cleanup: true\n'))
    client = serve(files={STIGMER: text})
    resolved = client.resolve()
    assert (resolved.config.provider, resolved.config.model) == ("ollama", "llama3.2:3b")
    execution = client.resolve_runner()
    assert execution.config.execution.mode == "local"
    assert execution.origin("execution.mode").detail == "local mode default"
    assert execution.config.execution.sandbox_ttl_seconds == 3600


def test_a_provider_set_alone_drops_the_old_providers_leftovers(serve):
    # `stigmer config set llm.provider anthropic` keeps model qwen2.5-coder:7b and the
    # Ollama base URL: Stigmer would send them to Anthropic.
    text = cli_file(provider="anthropic")
    resolved = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}, files={STIGMER: text}).resolve()
    assert (resolved.config.provider, resolved.config.model, resolved.config.base_url) == (
        "anthropic", "claude-sonnet-5-5", "https://api.anthropic.com")
    assert any("backend.local.llm.model 'qwen2.5-coder:7b': it belongs to ollama" in w
               for w in resolved.warnings)


def test_backend_type_is_the_mode(serve):
    resolved = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY},
                     files={STIGMER: cli_file(backend_type="cloud")}).resolve()
    assert resolved.config.mode == "cloud"
    assert resolved.origin("mode").detail == "~/.stigmer/config.yaml: backend.type"


def test_mode_beats_backend_type(serve):
    client = serve(env={"MODE": "local"}, files={STIGMER: cli_file(backend_type="cloud")})
    assert client.resolve().config.mode == "local"


def test_the_mode_flag_beats_backend_type(serve):
    client = serve(args=["--mode", "local"], files={STIGMER: cli_file(backend_type="cloud")})
    assert client.resolve().origin("mode").detail == "--mode"


def test_stigmers_llm_values_are_local_modes_only(serve):
    client = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY},
                   files={STIGMER: cli_file(model="llama3.2:3b")})
    assert client.resolve(mode="cloud").config.model == "claude-sonnet-5-5"


# -- llmconfig's own file, beside Stigmer's ---------------------------------------------------

def test_llmconfigs_own_file_ranks_above_stigmers(serve):
    client = serve(files={STIGMER: cli_file(model="llama3.2:3b"),
                          OWN: "local:\n  llm:\n    model: qwen2.5-coder:14b\n"})
    resolved = client.resolve()
    assert resolved.config.model == "qwen2.5-coder:14b"
    assert resolved.origin("model").detail == "~/.stigmer/llmconfig.yaml: local.llm.model"
    assert resolved.origin("base_url").detail == \
        "~/.stigmer/config.yaml: backend.local.llm.base_url"


def test_the_environment_beats_both_files(serve):
    client = serve(env={"STIGMER_LLM_MODEL": "phi4"},
                   files={STIGMER: cli_file(model="llama3.2:3b"),
                          OWN: "llm:\n  model: qwen2.5-coder:14b\n"})
    assert client.resolve().config.model == "phi4:14b"


def test_llmconfigs_own_file_keeps_the_richer_format(serve):
    client = serve(files={STIGMER: DEFAULT_FILE, OWN: (
        "llm:\n  max_tokens: 4096\n  temperature: 0.2\n"
        "runner:\n  temporal: {max_concurrency: 4}\n")})
    resolved = client.resolve()
    assert (resolved.config.max_tokens, resolved.config.temperature) == (4096, 0.2)
    assert client.resolve_runner().config.temporal.max_concurrency == 4


def test_the_config_flag_names_llmconfigs_own_file(serve, workspace):
    path = workspace.write("elsewhere.yaml", "llm:\n  model: llama3.2\n")
    resolved = serve(args=["--config", str(path)], files={STIGMER: DEFAULT_FILE}).resolve()
    assert resolved.origin("model").detail == f"{path}: llm.model"


def test_the_llmconfig_config_variable_names_llmconfigs_own_file(serve, workspace):
    path = workspace.write("elsewhere.yaml", "llm:\n  model: llama3.2\n")
    resolved = serve(env={"STIGMER_LLMCONFIG_CONFIG": str(path)}).resolve()
    assert resolved.config.model == "llama3.2:3b"
    assert resolved.warnings == ()


def test_stigmer_config_still_works_and_says_its_new_name(serve, workspace):
    path = workspace.write("elsewhere.yaml", "llm:\n  model: llama3.2\n")
    resolved = serve(env={"STIGMER_CONFIG": str(path)}).resolve()
    assert resolved.config.model == "llama3.2:3b"
    assert resolved.warnings == ("STIGMER_CONFIG is deprecated; rename it to "
                                 "STIGMER_LLMCONFIG_CONFIG",)


def test_the_new_variable_beats_the_deprecated_one(serve, workspace):
    new = workspace.write("new.yaml", "llm:\n  model: llama3.2\n")
    old = workspace.write("old.yaml", "llm:\n  model: phi4\n")
    resolved = serve(env={"STIGMER_LLMCONFIG_CONFIG": str(new),
                          "STIGMER_CONFIG": str(old)}).resolve()
    assert resolved.config.model == "llama3.2:3b"
    assert "STIGMER_CONFIG is deprecated and ignored because STIGMER_LLMCONFIG_CONFIG is set" \
        in resolved.warnings


def test_an_old_format_file_at_stigmers_path_still_works_and_says_where_it_goes(serve):
    resolved = serve(files={STIGMER: "local:\n  llm:\n    model: llama3.2\n"}).resolve()
    assert resolved.config.model == "llama3.2:3b"
    assert resolved.origin("model").detail == "~/.stigmer/config.yaml: local.llm.model"
    (warning,) = resolved.warnings
    assert warning.startswith("~/.stigmer/config.yaml is in llmconfig's own format, which now "
                              "belongs in ~/.stigmer/llmconfig.yaml")
    assert warning.endswith("move it: mv ~/.stigmer/config.yaml ~/.stigmer/llmconfig.yaml")


def test_an_old_format_file_at_stigmers_path_is_ignored_beside_the_new_one(serve):
    resolved = serve(files={STIGMER: "llm:\n  model: phi4\n",
                            OWN: "llm:\n  model: llama3.2\n"}).resolve()
    assert resolved.config.model == "llama3.2:3b"
    assert any("~/.stigmer/config.yaml is in llmconfig's own format and is ignored" in w
               for w in resolved.warnings)


def test_the_working_directorys_file_still_works_and_says_where_it_goes(serve):
    resolved = serve(files={".stigmer/config.yaml": "llm:\n  model: llama3.2\n"}).resolve()
    assert resolved.config.model == "llama3.2:3b"
    (warning,) = resolved.warnings
    assert "no longer looked for in the working directory" in warning
    assert "~/.stigmer/llmconfig.yaml" in warning


def test_a_stigmer_file_named_as_llmconfigs_own_is_refused_with_the_fix(workspace):
    path = workspace.write("stigmer.yaml", DEFAULT_FILE)
    handle = startup_refusal(workspace, ["--config", str(path)])
    assert ("(named by --config): this is Stigmer's own config file (it has backend:), not "
            "llmconfig's") in handle.log


def test_both_files_absent_is_the_zero_config_start(server_process):
    handle = server_process()
    handle.wait_for(r"config files: none found")
    with llmconfig.Client(handle.target) as client:
        resolved = client.resolve()
    assert resolved.origin("model").detail == "local mode default"
    assert resolved.warnings == ()


# -- both files are watched and reloaded ------------------------------------------------------

def wait_until(condition, what: str, seconds: float = 8.0) -> None:  # type: ignore[no-untyped-def]
    """A hang guard, not a timing assertion: the watcher reacts in milliseconds."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} not seen within {seconds} s"
        time.sleep(0.05)


def test_an_edit_of_stigmers_file_is_served_without_a_restart(serve, workspace):
    path = workspace.write(STIGMER, DEFAULT_FILE)
    client = serve()
    path.write_text(cli_file(model="llama3.2:3b"))
    wait_until(lambda: client.resolve().config.model == "llama3.2:3b", "the edit")


def test_llmconfigs_own_file_created_after_the_start_is_served(serve, workspace):
    workspace.write(STIGMER, DEFAULT_FILE)
    client = serve()
    workspace.write(OWN, "local:\n  llm:\n    model: phi4\n")
    wait_until(lambda: client.resolve().config.model == "phi4:14b", "the new file")


def test_a_broken_edit_of_stigmers_file_keeps_the_last_good_state(serve, servers, workspace):
    path = workspace.write(STIGMER, cli_file(model="llama3.2:3b"))
    client = serve()
    path.write_text(cli_file(model="llama3.2:3b") + "  bad: [\n")
    assert servers[0].reload() == "failed"
    resolved = client.resolve()
    assert resolved.config.model == "llama3.2:3b"
    assert any("~/.stigmer/config.yaml:" in w and "invalid YAML" in w
               and "serving the last good configuration" in w for w in resolved.warnings)


# -- bad input: the treatment llmconfig's own file gets ----------------------------------------

def refusal(workspace, env=None) -> str:  # type: ignore[no-untyped-def]
    """The one line the command explains its refusal (exit 2) with, in-process."""
    handle = startup_refusal(workspace, env=env)
    _, *lines = handle.lines
    assert len(lines) == 1, handle.log
    return lines[0]


def test_a_yaml_error_is_one_line_with_line_and_column(workspace):
    workspace.write(STIGMER, DEFAULT_FILE.replace("model: qwen2.5-coder:7b",
                                                  "model: [qwen2.5-coder:7b"))
    line = refusal(workspace)
    assert line.startswith("  - ~/.stigmer/config.yaml:")
    assert "invalid YAML" in line


def test_a_wrong_type_names_file_line_column_and_key(workspace):
    workspace.write(STIGMER, cli_file(model="[qwen2.5-coder, llama3.2]"))
    line = refusal(workspace)
    assert line == ("  - ~/.stigmer/config.yaml:10:20: backend.local.llm.model: must be a "
                    "string (Stigmer's schema), got a list; fix it with `stigmer config set` "
                    "or in the file")


def test_a_wrong_type_never_echoes_a_key(workspace):
    workspace.write(STIGMER, cli_file(provider="anthropic", api_key=f"{{k: {ANTHROPIC_KEY}}}"))
    line = refusal(workspace, env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    assert "backend.local.llm.api_key: must be a string" in line
    assert ANTHROPIC_KEY not in line and "f2c9" not in line


@pytest.mark.parametrize("kind", ["fifo", "huge"])
def test_a_special_or_huge_stigmer_file_is_refused_at_once(workspace, kind):
    path = workspace.home / ".stigmer" / "config.yaml"
    path.parent.mkdir()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        with path.open("wb") as handle:
            handle.truncate(50 * 1024 * 1024)
    line = refusal(workspace)
    assert line.startswith("  - config file: ~/.stigmer/config.yaml ")


def test_a_broken_stigmer_file_does_not_stop_a_server_in_another_mode(server_process, workspace):
    workspace.write(STIGMER, "backend:\n    type: [\n")
    handle = server_process(env={"MODE": "cloud", "ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    handle.wait_for(r"local mode \(on request\) is not usable: ~/.stigmer/config.yaml:\d+:\d+: "
                    r"invalid YAML")
    with llmconfig.Client(handle.target) as client:
        assert client.resolve().config.mode == "cloud"
        with pytest.raises(llmconfig.PreconditionFailed) as caught:
            client.resolve(mode="local")
    assert caught.value.violations[0].reason == "CONFIG_FILE_INVALID"


def test_a_section_that_is_not_a_mapping_voids_local_modes_file_values(serve):
    client = serve(env={"MODE": "cloud", "ANTHROPIC_API_KEY": ANTHROPIC_KEY},
                   files={STIGMER: HEADER + "backend:\n    type: local\n    local: ollama\n"})
    assert client.resolve().config.mode == "cloud"
    for call in (lambda: client.resolve(mode="local"), lambda: client.resolve_runner("local")):
        with pytest.raises(llmconfig.PreconditionFailed) as caught:
            call()
        assert caught.value.violations[0].description == (
            "~/.stigmer/config.yaml:7:12: backend.local: must be a mapping of keys (Stigmer's "
            "schema), got 'ollama'; fix it with `stigmer config set` or in the file")


def test_an_unknown_backend_type_names_the_key(workspace):
    workspace.write(STIGMER, cli_file(backend_type="hybrid"))
    line = refusal(workspace)
    assert line.startswith("  - ~/.stigmer/config.yaml:6:11: backend.type: mode 'hybrid' is "
                           "not known; use one of: cloud, local")


# -- the runner: Temporal, the daemon's port, execution, the sandbox --------------------------

def test_the_backend_is_the_daemons_port(serve):
    runner = serve().resolve_runner()
    assert runner.config.backend.endpoint == "localhost:7234"
    assert runner.origin("backend.endpoint").detail == "local mode default"


def test_a_runner_in_a_container_reaches_the_daemon_on_the_host(serve):
    runner = serve().resolve_runner(network="docker")
    assert runner.config.backend.endpoint == "host.docker.internal:7234"


def test_temporal_is_managed_by_default(serve):
    runner = serve(files={STIGMER: DEFAULT_FILE}).resolve_runner()
    t = runner.config.temporal
    assert (t.address, t.managed) == ("localhost:7233", True)
    assert runner.origin("temporal.managed").detail == \
        "~/.stigmer/config.yaml: backend.local.temporal.managed"


def test_a_managed_temporal_listens_on_the_files_port(serve):
    text = cli_file(temporal="            managed: true\n            port: 7300\n")
    runner = serve(files={STIGMER: text}).resolve_runner()
    assert (runner.config.temporal.address, runner.config.temporal.managed) == (
        "localhost:7300", True)


def test_an_external_temporal_from_the_file(serve):
    text = cli_file(temporal="            managed: false\n            address: temporal.lan:7233\n")
    runner = serve(files={STIGMER: text}).resolve_runner()
    assert (runner.config.temporal.address, runner.config.temporal.managed) == (
        "temporal.lan:7233", False)
    assert runner.origin("temporal.address").detail == \
        "~/.stigmer/config.yaml: backend.local.temporal.address"


def test_the_temporal_variable_means_an_external_temporal(serve):
    runner = serve(env={"TEMPORAL_SERVICE_ADDRESS": "temporal.lan:7233"},
                   files={STIGMER: DEFAULT_FILE}).resolve_runner()
    assert (runner.config.temporal.address, runner.config.temporal.managed) == (
        "temporal.lan:7233", False)
    assert runner.origin("temporal.managed").detail == \
        "TEMPORAL_SERVICE_ADDRESS is set: an external Temporal"


def test_unmanaged_without_an_address_is_the_managed_default_with_a_warning(serve):
    runner = serve(files={STIGMER: cli_file(temporal="            managed: false\n")}
                   ).resolve_runner()
    assert (runner.config.temporal.address, runner.config.temporal.managed) == (
        "localhost:7233", True)
    assert any("backend.local.temporal.managed is false but backend.local.temporal.address is "
               "not set" in w for w in runner.warnings)


def test_execution_defaults_are_stigmers(serve):
    e = serve().resolve_runner().config.execution
    assert (e.mode, e.sandbox_image, e.sandbox_auto_pull, e.sandbox_cleanup,
            e.sandbox_ttl_seconds) == ("local", "ghcr.io/stigmer/agent-sandbox-basic:latest",
                                       True, True, 3600)


def test_execution_comes_from_stigmers_file(serve):
    text = cli_file(execution=(
        "            mode: sandbox\n            sandbox_image: ghcr.io/acme/sandbox:2\n"
        "            auto_pull: false\n            cleanup: false\n            ttl: 600\n"))
    runner = serve(files={STIGMER: text}).resolve_runner()
    e = runner.config.execution
    assert (e.mode, e.sandbox_image, e.sandbox_auto_pull, e.sandbox_cleanup,
            e.sandbox_ttl_seconds) == ("sandbox", "ghcr.io/acme/sandbox:2", False, False, 600)
    assert runner.origin("execution.sandbox_ttl_seconds").detail == \
        "~/.stigmer/config.yaml: backend.local.execution.ttl"


def test_a_hand_written_execution_section_without_booleans_keeps_their_defaults(serve):
    # Go would read the absent booleans as false; the CLI always writes both.
    runner = serve(files={STIGMER: cli_file(execution="            mode: sandbox\n")}
                   ).resolve_runner()
    e = runner.config.execution
    assert (e.mode, e.sandbox_auto_pull, e.sandbox_cleanup) == ("sandbox", True, True)
    assert runner.origin("execution.sandbox_auto_pull").detail == "local mode default"


def test_execution_variables_beat_the_file(serve):
    env = {"STIGMER_EXECUTION_MODE": "auto", "STIGMER_SANDBOX_IMAGE": "sandbox:dev",
           "STIGMER_SANDBOX_AUTO_PULL": "false", "STIGMER_SANDBOX_CLEANUP": "false",
           "STIGMER_SANDBOX_TTL": "0"}
    runner = serve(env=env, files={STIGMER: DEFAULT_FILE}).resolve_runner()
    e = runner.config.execution
    assert (e.mode, e.sandbox_image, e.sandbox_auto_pull, e.sandbox_cleanup,
            e.sandbox_ttl_seconds) == ("auto", "sandbox:dev", False, False, 0)
    assert runner.origin("execution.mode").detail == "STIGMER_EXECUTION_MODE"


def test_execution_in_llmconfigs_own_file_beats_stigmers(serve):
    runner = serve(files={STIGMER: DEFAULT_FILE,
                          OWN: "runner:\n  execution: {mode: sandbox, sandbox_ttl_seconds: 60}\n"}
                   ).resolve_runner()
    assert (runner.config.execution.mode, runner.config.execution.sandbox_ttl_seconds) == (
        "sandbox", 60)
    assert runner.origin("execution.mode").detail == \
        "~/.stigmer/llmconfig.yaml: runner.execution.mode"


def test_bad_execution_values_are_listed_in_one_precondition(serve):
    client = serve(env={"STIGMER_EXECUTION_MODE": "docker", "STIGMER_SANDBOX_AUTO_PULL": "yes",
                        "STIGMER_SANDBOX_TTL": "-5"},
                   files={STIGMER: cli_file(execution="            cleanup: maybe\n")})
    assert client.resolve().config.provider == "ollama"  # never the LLM's problem
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        client.resolve_runner()
    subjects = [v.subject for v in caught.value.violations]
    assert subjects == ["STIGMER_EXECUTION_MODE", "STIGMER_SANDBOX_AUTO_PULL",
                        "STIGMER_SANDBOX_TTL",
                        "~/.stigmer/config.yaml:15:22: backend.local.execution.cleanup"]
    messages = " | ".join(v.description for v in caught.value.violations)
    assert "'docker' is not a known execution.mode; use one of: local, sandbox, auto" in messages
    assert "'yes' is not a boolean; execution.sandbox_auto_pull must be true or false" in messages
    assert "-5 is out of range; execution.sandbox_ttl_seconds must be a whole number of " \
           "seconds, 0 or more" in messages


def test_daytona_in_local_mode_is_ignored_with_a_warning(serve):
    runner = serve(env={"SANDBOX_TYPE": "daytona"}).resolve_runner()
    assert runner.config.sandbox.type == "filesystem"
    assert runner.config.sandbox.root_dir == "./workspace"
    assert any("sandbox.type daytona (from SANDBOX_TYPE) is ignored in local mode" in w
               for w in runner.warnings)


# -- one grammar, one secret-file reader ------------------------------------------------------

def test_a_newline_in_a_runner_secret_file_name_is_refused_before_it_is_shown(serve):
    client = serve(env={"DAYTONA_API_KEY_FILE": "/tmp/key\nINFO forged line", "MODE": "cloud",
                        "ANTHROPIC_API_KEY": ANTHROPIC_KEY})
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        client.resolve_runner()
    (violation,) = [v for v in caught.value.violations if v.subject == "DAYTONA_API_KEY_FILE"]
    assert violation.description == ("DAYTONA_API_KEY_FILE: the file name contains a control "
                                      "character (U+000A at position 8)")


def test_a_blank_runner_variable_counts_as_unset(serve):
    runner = serve(env={"TEMPORAL_NAMESPACE": "  ", "STIGMER_SANDBOX_TTL": ""}).resolve_runner()
    assert runner.config.temporal.namespace == "default"
    assert runner.config.execution.sandbox_ttl_seconds == 3600


def test_runner_numbers_follow_the_one_grammar(serve):
    client = serve(env={"REDIS_PORT": "6_379"})
    with pytest.raises(llmconfig.PreconditionFailed) as caught:
        client.resolve_runner()
    assert caught.value.violations[0].description == (
        "REDIS_PORT: '6_379' is not an integer; redis.port must be a port between 1 and 65535")


# -- model names keep Stigmer's (graphton's) meaning ------------------------------------------

@pytest.mark.parametrize(("asked", "model"), [("codellama", "codellama:13b"),
                                              ("deepseek-coder", "deepseek-coder-v2:16b"),
                                              ("qwen2.5-coder", "qwen2.5-coder:7b"),
                                              ("llama3.2", "llama3.2:3b")])
def test_ollama_friendly_names_mean_what_graphton_maps_them_to(serve, asked, model):
    assert serve().resolve(model=asked).config.model == model


@pytest.mark.parametrize("model", ["yi", "solar", "orca-mini", "vicuna"])
def test_graphtons_ollama_families_name_ollama(serve, model):
    resolved = serve(env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY}).resolve(mode="cloud", model=model)
    assert resolved.config.provider == "ollama"


def test_model_names_are_exact_and_a_case_slip_is_said(serve):
    resolved = serve().resolve(model="QWEN2.5-coder")
    assert resolved.config.model == "QWEN2.5-coder"  # as graphton passes it
    assert resolved.warnings == (
        "model 'QWEN2.5-coder' (from request overrides.model) is passed on as given: names are "
        "exact, and the Ollama name it resembles is 'qwen2.5-coder' (→ qwen2.5-coder:7b); "
        "write it in lower case to use that",)


def test_an_unknown_key_that_is_a_pasted_secret_is_not_echoed(serve):
    resolved = serve(files={STIGMER: cli_file(extra=f"        {ANTHROPIC_KEY}: x\n")}).resolve()
    (warning,) = resolved.warnings
    assert "backend.local.<a key that is not a plain name>" in warning
    assert "f2c9" not in warning


# -- hunting for a Stigmer file that breaks the reader or shows a key --------------------------

FUZZ_KEY = "sk-ant-api03-FUZZfuzzFUZZfuzz-9q8w7e6r5t4y"
FRAGMENTS = ["backend:", "\n    type: ", "local", "cloud", "\n    local:", "\n        llm:",
             "\n            provider: ", "\n            api_key: ", "\n            model: ",
             "\n        temporal:", "\n            managed: ", "\n            port: ",
             "\n        execution:", "\n            ttl: ", "\n            auto_pull: ",
             "\ncontext:", "\n  ", " ", "true", "false", "0", "-1", '""', "[", "]", "{", "}",
             ": ", ",", "&a ", "*a", "!!str ", "#", "\t", FUZZ_KEY, FUZZ_KEY, "anthropic",
             "ollama", "qwen2.5-coder:7b", "claude-sonnet-4.5", "é", "\x07", "<<: "]


VALUES = [FUZZ_KEY, f"'{FUZZ_KEY}'", f"{FUZZ_KEY}: x", f"[{FUZZ_KEY}]", "", '""', "[a]",
          "{k: v}", "true", "no", "0", "-1", "7300", "3600", "1_000", "anthropic", "ollama",
          "Ollama", "qwen2.5-coder:7b", "claude-sonnet-4.5", "localhost:7233", "é", "*a",
          "&a x", "!!str 5", "\x07", "http://localhost:11434", "sandbox", "auto"]


def fuzzed_stigmer_file(rng) -> str:  # type: ignore[no-untyped-def]
    """Half the time the CLI's own layout with random values, half random fragments."""
    if rng.random() < 0.5:
        return HEADER + "".join(rng.choices(FRAGMENTS, k=rng.randint(1, 30)))
    value = lambda: rng.choice(VALUES)  # noqa: E731
    text = cli_file(provider=value(), model=value(), api_key=value(), base_url=value(),
                    backend_type=rng.choice(["local", "cloud", value()]),
                    temporal=f"            managed: {value()}\n            port: {value()}\n"
                             f"            address: {value()}\n",
                    execution=f"            mode: {value()}\n            ttl: {value()}\n"
                              f"            auto_pull: {value()}\n")
    if rng.random() < 0.3:
        text += "".join(rng.choices(FRAGMENTS, k=rng.randint(1, 5)))
    return text


def test_no_stigmer_file_breaks_the_reader_or_shows_a_key(workspace):
    import random

    from llmconfig_server.sources.layers import ServerFlags, read_server_sources

    rng = random.Random(20261202)
    path = workspace.write(STIGMER, "")
    parsed = 0
    for _ in range(2000):
        text = fuzzed_stigmer_file(rng)
        path.write_text(text, encoding="utf-8")
        sources = read_server_sources(ServerFlags(), {}, workspace.cwd, workspace.home)
        said = [f"{v.message} {v.subject}" for v in sources.problems()]
        for layer in sources.all_layers():
            said += [*layer.warnings, *layer.runner_warnings]
            said += [v.detail for v in layer.generic.values()]
        parsed += bool(sources.stigmer_modes["local"].generic)
        for text_said in said:
            assert FUZZ_KEY not in text_said and FUZZ_KEY[-12:] not in text_said, (text, said)
            assert "\n" not in text_said, (text, text_said)
    assert parsed > 200  # the values were exercised, not only the refusals
