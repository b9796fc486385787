package llmconfig_test

import (
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/stigmer/llmconfig/go/internal/testserver"
	"github.com/stigmer/llmconfig/go/llmconfig"
	llmconfigv1 "github.com/stigmer/llmconfig/go/llmconfig/v1"
)

func TestRunnerEnvForDockerPointsAtTheHost(t *testing.T) {
	t.Parallel()
	ollama := testserver.Ollama(t, "0.6.2", "qwen2.5-coder:7b")
	port := ollama.URL[strings.LastIndex(ollama.URL, ":")+1:]
	server := testserver.Start(t, nil, "OLLAMA_HOST=127.0.0.1:"+port)
	answer, err := client(t, server.Target, nil).ResolveRunnerConfig(guard(t), &llmconfigv1.ResolveRunnerConfigRequest{Network: "docker"})
	if err != nil {
		t.Fatal(llmconfig.FromError(err))
	}
	env, err := llmconfig.RunnerEnv(answer, false)
	if err != nil {
		t.Fatal(err)
	}
	got := environ(env.Environ())
	want := map[string]string{
		"MODE": "local", "STIGMER_LLM_PROVIDER": "ollama", "STIGMER_LLM_MODEL": "qwen2.5-coder:7b",
		"STIGMER_LLM_BASE_URL": "http://host.docker.internal:" + port, "OLLAMA_BASE_URL": "http://host.docker.internal:" + port,
		"STIGMER_LLM_MAX_TOKENS": "8192", "STIGMER_LLM_TEMPERATURE": "0",
		"SANDBOX_TYPE": "filesystem", "SANDBOX_ROOT_DIR": "./workspace",
		"TEMPORAL_SERVICE_ADDRESS": "host.docker.internal:7233", "TEMPORAL_NAMESPACE": "default",
		"TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE": "agent_execution_runner", "TEMPORAL_MAX_CONCURRENCY": "10",
	}
	for name, value := range want {
		if got[name] != value {
			t.Errorf("%s=%q, want %q", name, got[name], value)
		}
	}
	if !strings.HasPrefix(got["STIGMER_BACKEND_ENDPOINT"], "host.docker.internal:") {
		t.Errorf("STIGMER_BACKEND_ENDPOINT=%q, want the daemon on host.docker.internal", got["STIGMER_BACKEND_ENDPOINT"])
	}
	for _, absent := range []string{"STIGMER_API_KEY", "STIGMER_LLM_API_KEY", "REDIS_HOST", "REDIS_PORT", "DAYTONA_API_KEY"} {
		if value, ok := got[absent]; ok {
			t.Errorf("%s=%q is set; without secrets and Redis it must not be", absent, value)
		}
	}
}

func TestSecretsReachTheEnvOnlyWhenAskedAndNeverTheCommandLine(t *testing.T) {
	t.Parallel()
	// Over a Unix socket: its file mode guards it, so keys need no token (a tokenless TCP
	// listener may refuse them).
	socket := filepath.Join(t.TempDir(), "llmconfig.sock")
	server := testserver.Start(t, []string{"--listen", "unix:" + socket, "--llm-provider", "anthropic"},
		"ANTHROPIC_API_KEY="+anthropicKey)
	answer, err := client(t, server.Target, nil).ResolveRunnerConfig(guard(t), &llmconfigv1.ResolveRunnerConfigRequest{IncludeSecrets: true})
	if err != nil {
		t.Fatal(llmconfig.FromError(err))
	}

	without, err := llmconfig.RunnerEnv(answer, false)
	if err != nil {
		t.Fatal(err)
	}
	if env := environ(without.Environ()); env["STIGMER_LLM_API_KEY"] != "" || env["STIGMER_API_KEY"] != "" {
		t.Errorf("secrets in the env without asking: %v", env)
	}

	with, err := llmconfig.RunnerEnv(answer, true)
	if err != nil {
		t.Fatal(err)
	}
	env := environ(with.Environ())
	if env["STIGMER_LLM_API_KEY"] != anthropicKey || env["STIGMER_API_KEY"] != "dummy-local-key" {
		t.Errorf("STIGMER_LLM_API_KEY=%q STIGMER_API_KEY=%q, want the key and local mode's dummy", env["STIGMER_LLM_API_KEY"], env["STIGMER_API_KEY"])
	}
	if _, ok := env["OLLAMA_BASE_URL"]; ok {
		t.Error("OLLAMA_BASE_URL is set for anthropic")
	}
	args := strings.Join(with.DockerArgs(), " ")
	if strings.Contains(args, anthropicKey) || strings.Contains(args, "dummy-local-key") {
		t.Errorf("a secret is in the docker command line: %s", args)
	}
	if !strings.Contains(args, "-e STIGMER_LLM_API_KEY -e") || !strings.Contains(args, "-e STIGMER_LLM_MODEL=claude-sonnet-5-5") {
		t.Errorf("docker args %s: want -e NAME for a secret, -e NAME=value for a setting", args)
	}
}

func TestSecretsAskedOfAnAnswerWithoutThemAreAnError(t *testing.T) {
	t.Parallel()
	server := testserver.Start(t, nil)
	answer, err := client(t, server.Target, nil).ResolveRunnerConfig(guard(t), &llmconfigv1.ResolveRunnerConfigRequest{})
	if err != nil {
		t.Fatal(llmconfig.FromError(err))
	}
	// STIGMER_API_KEY is present (local mode's dummy key) but was not asked for.
	if _, err := llmconfig.RunnerEnv(answer, true); err == nil || !strings.Contains(err.Error(), "include_secrets") {
		t.Errorf("err %v, want one that says to resolve with include_secrets", err)
	}
}

func TestEveryRunnerEnvLineIsWritten(t *testing.T) {
	t.Parallel()
	answer := &llmconfigv1.ResolveRunnerConfigResponse{
		Config: &llmconfigv1.RunnerConfig{
			Mode:     "cloud",
			Temporal: &llmconfigv1.TemporalSettings{Address: "temporal:7233", Namespace: "stigmer", TaskQueue: "q", MaxConcurrency: 20},
			Backend:  &llmconfigv1.BackendSettings{Endpoint: "api:443", ApiKey: "backend-key", ApiKeyPresent: true},
			Sandbox: &llmconfigv1.SandboxSettings{Type: "daytona", SnapshotId: "snap", DaytonaApiKey: "daytona-key",
				DaytonaApiKeyPresent: true},
			Redis: &llmconfigv1.RedisSettings{Enabled: true, Host: "redis", Port: 6379, Password: "pw", PasswordPresent: true},
			Execution: &llmconfigv1.ExecutionSettings{Mode: "sandbox", SandboxImage: "ghcr.io/stigmer/agent-sandbox-basic:latest",
				SandboxAutoPull: false, SandboxCleanup: true, SandboxTtlSeconds: 600},
		},
		Llm: &llmconfigv1.ResolveLLMConfigResponse{Config: &llmconfigv1.LLMConfig{
			Provider: "openai", Model: "gpt-4o", BaseUrl: "https://api.openai.com/v1", ApiKey: "sk-proj-x", ApiKeyPresent: true,
			MaxTokens: proto.Int32(4096), Temperature: proto.Float64(0.7),
		}},
	}
	env, err := llmconfig.RunnerEnv(answer, true)
	if err != nil {
		t.Fatal(err)
	}
	got := environ(env.With("LOG_LEVEL", "DEBUG").With("SANDBOX_ROOT_DIR", "/workspace").Environ())
	want := map[string]string{
		"MODE": "cloud", "STIGMER_LLM_PROVIDER": "openai", "STIGMER_LLM_MODEL": "gpt-4o",
		"STIGMER_LLM_BASE_URL": "https://api.openai.com/v1", "STIGMER_LLM_API_KEY": "sk-proj-x",
		"STIGMER_LLM_MAX_TOKENS": "4096", "STIGMER_LLM_TEMPERATURE": "0.7", "STIGMER_API_KEY": "backend-key",
		"SANDBOX_TYPE": "daytona", "SANDBOX_ROOT_DIR": "/workspace", "REDIS_HOST": "redis", "REDIS_PORT": "6379",
		"REDIS_PASSWORD": "pw", "TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE": "q", "TEMPORAL_NAMESPACE": "stigmer",
		"TEMPORAL_SERVICE_ADDRESS": "temporal:7233", "TEMPORAL_MAX_CONCURRENCY": "20", "STIGMER_BACKEND_ENDPOINT": "api:443",
		"DAYTONA_DEV_TOOLS_SNAPSHOT_ID": "snap", "DAYTONA_API_KEY": "daytona-key", "LOG_LEVEL": "DEBUG",
		"STIGMER_EXECUTION_MODE": "sandbox", "STIGMER_SANDBOX_IMAGE": "ghcr.io/stigmer/agent-sandbox-basic:latest",
		"STIGMER_SANDBOX_AUTO_PULL": "false", "STIGMER_SANDBOX_CLEANUP": "true", "STIGMER_SANDBOX_TTL": "600",
	}
	for name, value := range want {
		if got[name] != value {
			t.Errorf("%s=%q, want %q", name, got[name], value)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d variables, want %d: %v", len(got), len(want), got)
	}
}
