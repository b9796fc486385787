package llmconfig

import (
	"fmt"
	"strconv"

	llmconfigv1 "github.com/stigmer/llmconfig/go/llmconfig/v1"
)

type runner = llmconfigv1.ResolveRunnerConfigResponse

// runnerEnv is the agent runner's environment: one line per variable it reads (Stigmer's
// backend/services/agent-runner/worker/config.py). A setting's
// value may be a string, a number, a bool or a proto3 optional (pointer); "" and nil leave the
// variable out, so the runner's own default applies. A secret also says whether the server
// resolved one, so an answer asked for without include_secrets is caught (RunnerEnv).
var runnerEnv = []envLine{
	setting("MODE", func(r *runner) any { return r.GetConfig().GetMode() }),
	setting("STIGMER_LLM_PROVIDER", func(r *runner) any { return r.GetLlm().GetConfig().GetProvider() }),
	setting("STIGMER_LLM_MODEL", func(r *runner) any { return r.GetLlm().GetConfig().GetModel() }),
	setting("STIGMER_LLM_BASE_URL", func(r *runner) any { return r.GetLlm().GetConfig().GetBaseUrl() }),
	setting("OLLAMA_BASE_URL", func(r *runner) any { return ollamaOnly(r, r.GetLlm().GetConfig().GetBaseUrl()) }),
	secret("STIGMER_LLM_API_KEY", func(r *runner) (string, bool) {
		return r.GetLlm().GetConfig().GetApiKey(), r.GetLlm().GetConfig().GetApiKeyPresent()
	}),
	setting("STIGMER_LLM_MAX_TOKENS", func(r *runner) any { return r.GetLlm().GetConfig().MaxTokens }),
	setting("STIGMER_LLM_TEMPERATURE", func(r *runner) any { return r.GetLlm().GetConfig().Temperature }),
	secret("STIGMER_API_KEY", func(r *runner) (string, bool) {
		return r.GetConfig().GetBackend().GetApiKey(), r.GetConfig().GetBackend().GetApiKeyPresent()
	}),
	setting("SANDBOX_TYPE", func(r *runner) any { return r.GetConfig().GetSandbox().GetType() }),
	setting("SANDBOX_ROOT_DIR", func(r *runner) any { return r.GetConfig().GetSandbox().GetRootDir() }),
	setting("REDIS_HOST", func(r *runner) any { return redisOnly(r, r.GetConfig().GetRedis().GetHost()) }),
	setting("REDIS_PORT", func(r *runner) any { return redisOnly(r, r.GetConfig().GetRedis().GetPort()) }),
	secret("REDIS_PASSWORD", func(r *runner) (string, bool) {
		return r.GetConfig().GetRedis().GetPassword(), r.GetConfig().GetRedis().GetPasswordPresent()
	}),
	setting("TEMPORAL_AGENT_EXECUTION_RUNNER_TASK_QUEUE", func(r *runner) any { return r.GetConfig().GetTemporal().GetTaskQueue() }),
	setting("TEMPORAL_NAMESPACE", func(r *runner) any { return r.GetConfig().GetTemporal().GetNamespace() }),
	setting("TEMPORAL_SERVICE_ADDRESS", func(r *runner) any { return r.GetConfig().GetTemporal().GetAddress() }),
	setting("TEMPORAL_MAX_CONCURRENCY", func(r *runner) any { return r.GetConfig().GetTemporal().GetMaxConcurrency() }),
	setting("STIGMER_BACKEND_ENDPOINT", func(r *runner) any { return r.GetConfig().GetBackend().GetEndpoint() }),
	setting("STIGMER_EXECUTION_MODE", func(r *runner) any { return r.GetConfig().GetExecution().GetMode() }),
	setting("STIGMER_SANDBOX_IMAGE", func(r *runner) any { return r.GetConfig().GetExecution().GetSandboxImage() }),
	setting("STIGMER_SANDBOX_AUTO_PULL", func(r *runner) any { return r.GetConfig().GetExecution().GetSandboxAutoPull() }),
	setting("STIGMER_SANDBOX_CLEANUP", func(r *runner) any { return r.GetConfig().GetExecution().GetSandboxCleanup() }),
	setting("STIGMER_SANDBOX_TTL", func(r *runner) any { return r.GetConfig().GetExecution().GetSandboxTtlSeconds() }),
	setting("DAYTONA_DEV_TOOLS_SNAPSHOT_ID", func(r *runner) any { return r.GetConfig().GetSandbox().GetSnapshotId() }),
	secret("DAYTONA_API_KEY", func(r *runner) (string, bool) {
		return r.GetConfig().GetSandbox().GetDaytonaApiKey(), r.GetConfig().GetSandbox().GetDaytonaApiKeyPresent()
	}),
}

// ollamaOnly: the runner (and LangChain's ChatOllama) read OLLAMA_BASE_URL for Ollama alone.
func ollamaOnly(r *runner, value string) any {
	if r.GetLlm().GetConfig().GetProvider() != "ollama" {
		return nil
	}
	return value
}

// redisOnly: without Redis (local mode) the runner must not be pointed at one.
func redisOnly(r *runner, value any) any {
	if !r.GetConfig().GetRedis().GetEnabled() {
		return nil
	}
	return value
}

// EnvVar is one variable of the runner's environment.
type EnvVar struct {
	Name   string
	Value  string
	Secret bool
}

// Env is the runner's environment, in a stable order.
type Env []EnvVar

// RunnerEnv is the environment of the agent runner that answer configures. withSecrets adds
// the secrets (the LLM key, STIGMER_API_KEY, the Redis password, the Daytona key); the answer
// must then have been asked for with include_secrets (an error says so otherwise). Resolve it
// with network "docker" for a runner in a container: loopback hosts in its endpoints are then
// the server's --container-host.
func RunnerEnv(answer *llmconfigv1.ResolveRunnerConfigResponse, withSecrets bool) (Env, error) {
	var env Env
	for _, line := range runnerEnv {
		if line.secret == nil {
			if value, ok := format(line.setting(answer)); ok {
				env = append(env, EnvVar{Name: line.name, Value: value})
			}
			continue
		}
		if !withSecrets {
			continue
		}
		value, present := line.secret(answer)
		if present && value == "" {
			return nil, fmt.Errorf("llmconfig: the runner config has %s but not its value: "+
				"resolve it with include_secrets (and a token with the secrets scope)", line.name)
		}
		if value != "" {
			env = append(env, EnvVar{Name: line.name, Value: value, Secret: true})
		}
	}
	return env, nil
}

// With is env with name set to value: replaced where env has it, else added (a setting the
// daemon owns, e.g. SANDBOX_ROOT_DIR=/workspace for the folder it mounts, or LOG_LEVEL).
func (e Env) With(name, value string) Env {
	out := append(Env(nil), e...)
	for i := range out {
		if out[i].Name == name {
			out[i].Value = value
			return out
		}
	}
	return append(out, EnvVar{Name: name, Value: value})
}

// Environ is every variable as NAME=value: for exec.Cmd.Env of a runner started as a
// process, or of the `docker` command that DockerArgs are given to.
func (e Env) Environ() []string {
	out := make([]string, 0, len(e))
	for _, v := range e {
		out = append(out, v.Name+"="+v.Value)
	}
	return out
}

// DockerArgs are `docker run` arguments: "-e NAME=value" for a setting and "-e NAME" for a
// secret, whose value docker takes from its own environment (Environ, in exec.Cmd.Env), so no
// secret is ever in a command line that `ps` shows.
func (e Env) DockerArgs() []string {
	out := make([]string, 0, 2*len(e))
	for _, v := range e {
		if v.Secret {
			out = append(out, "-e", v.Name)
		} else {
			out = append(out, "-e", v.Name+"="+v.Value)
		}
	}
	return out
}

type envLine struct {
	name    string
	setting func(*runner) any
	secret  func(*runner) (value string, present bool)
}

func setting(name string, value func(*runner) any) envLine {
	return envLine{name: name, setting: value}
}

func secret(name string, value func(*runner) (string, bool)) envLine {
	return envLine{name: name, secret: value}
}

// format writes a value as the runner parses it (Python's int(), float(), "true"/"false").
func format(value any) (string, bool) {
	switch v := value.(type) {
	case nil:
		return "", false
	case string:
		return v, v != ""
	case bool:
		return strconv.FormatBool(v), true
	case int32:
		return strconv.FormatInt(int64(v), 10), true
	case int64:
		return strconv.FormatInt(v, 10), true
	case uint32:
		return strconv.FormatUint(uint64(v), 10), true
	case *int32:
		if v == nil {
			return "", false
		}
		return format(*v)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), true
	case *float64:
		if v == nil {
			return "", false
		}
		return format(*v)
	case *bool:
		if v == nil {
			return "", false
		}
		return format(*v)
	}
	panic(fmt.Sprintf("llmconfig: runnerEnv has a value of type %T that format does not write", value))
}
