package llmconfig_test

import (
	"strings"
	"testing"

	"github.com/stigmer/llmconfig/go/internal/testserver"
	"github.com/stigmer/llmconfig/go/llmconfig"
	llmconfigv1 "github.com/stigmer/llmconfig/go/llmconfig/v1"
)

// probeBudget is a hang guard: the default 2 s is short for a loaded 2-core CI machine.
var probeBudget = []string{"--probe-timeout", "20"}

func TestHealthIsHealthyWhenOllamaHasTheModel(t *testing.T) {
	t.Parallel()
	ollama := testserver.Ollama(t, "0.6.2", "qwen2.5-coder:7b", "llama3.2:3b")
	server := testserver.Start(t, probeBudget, "OLLAMA_HOST="+ollama.Listener.Addr().String())
	health, err := client(t, server.Target, nil).CheckProviderHealth(guard(t), &llmconfigv1.CheckProviderHealthRequest{})
	if err != nil {
		t.Fatal(llmconfig.FromError(err))
	}
	if !health.GetHealthy() || health.GetStatus() != llmconfigv1.HealthStatus_HEALTH_STATUS_HEALTHY ||
		health.GetServerVersion() != "0.6.2" || !health.GetModelAvailable() {
		t.Errorf("health %v, want healthy Ollama 0.6.2 with the model", health)
	}
	if health.GetLatency() == nil || health.GetCheckedAt() == nil {
		t.Errorf("no latency or checked_at in %v", health)
	}
}

func TestHealthNamesTheCommandForAModelNotPulled(t *testing.T) {
	t.Parallel()
	ollama := testserver.Ollama(t, "0.6.2", "qwen2.5-coder:14b")
	server := testserver.Start(t, probeBudget, "OLLAMA_HOST="+ollama.Listener.Addr().String())
	health, err := client(t, server.Target, nil).CheckProviderHealth(guard(t), &llmconfigv1.CheckProviderHealthRequest{})
	if err != nil {
		t.Fatal(llmconfig.FromError(err))
	}
	if health.GetHealthy() || health.GetStatus() != llmconfigv1.HealthStatus_HEALTH_STATUS_MODEL_NOT_FOUND ||
		!strings.Contains(health.GetMessage(), "ollama pull qwen2.5-coder:7b") {
		t.Errorf("health %v, want MODEL_NOT_FOUND naming `ollama pull qwen2.5-coder:7b`", health)
	}
}

func TestHealthIsUnreachableWhenOllamaStops(t *testing.T) {
	t.Parallel()
	ollama := testserver.Ollama(t, "0.6.2", "qwen2.5-coder:7b")
	server := testserver.Start(t, probeBudget, "OLLAMA_HOST="+ollama.Listener.Addr().String())
	health, err := client(t, server.Target, nil).CheckProviderHealth(guard(t), &llmconfigv1.CheckProviderHealthRequest{})
	if err != nil || !health.GetHealthy() {
		t.Fatalf("before: %v %v, want healthy", health, llmconfig.FromError(err))
	}
	ollama.Close()
	health, err = client(t, server.Target, nil).CheckProviderHealth(guard(t), &llmconfigv1.CheckProviderHealthRequest{Refresh: true})
	if err != nil {
		t.Fatal(llmconfig.FromError(err))
	}
	if health.GetHealthy() || health.GetStatus() != llmconfigv1.HealthStatus_HEALTH_STATUS_UNREACHABLE ||
		!strings.Contains(health.GetMessage(), "ollama serve") {
		t.Errorf("health %v, want UNREACHABLE naming `ollama serve`", health)
	}
}
