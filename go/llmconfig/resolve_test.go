package llmconfig_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/stigmer/llmconfig/go/internal/testserver"
	"github.com/stigmer/llmconfig/go/llmconfig"
	llmconfigv1 "github.com/stigmer/llmconfig/go/llmconfig/v1"
)

func TestOverridesAreOptionalFieldsSetThroughPointers(t *testing.T) {
	t.Parallel()
	server := testserver.Start(t, nil)
	answer, err := client(t, server.Target, nil).ResolveLLMConfig(guard(t), &llmconfigv1.ResolveLLMConfigRequest{
		Overrides: &llmconfigv1.LLMSettings{Model: proto.String("llama3.2"), Temperature: proto.Float64(0.2)},
	})
	if err != nil {
		t.Fatal(llmconfig.FromError(err))
	}
	config := answer.GetConfig()
	if config.GetProvider() != "ollama" || config.GetModel() != "llama3.2:3b" || config.GetRequestedModel() != "llama3.2" {
		t.Errorf("resolved %s %s (asked %s), want ollama llama3.2:3b", config.GetProvider(), config.GetModel(), config.GetRequestedModel())
	}
	if config.Temperature == nil || *config.Temperature != 0.2 {
		t.Errorf("temperature %v, want the override 0.2", config.Temperature)
	}
	if config.MaxTokens == nil || *config.MaxTokens != 8192 {
		t.Errorf("max_tokens %v, want local mode's 8192", config.MaxTokens)
	}
	origins := map[string]*llmconfigv1.FieldOrigin{}
	for _, origin := range answer.GetOrigins() {
		origins[origin.GetField()] = origin
	}
	if origin := origins["temperature"]; origin.GetSource() != llmconfigv1.Source_SOURCE_REQUEST {
		t.Errorf("temperature from %v, want SOURCE_REQUEST", origin)
	}
	if detail := origins["provider"].GetDetail(); !strings.Contains(detail, "implied by model") {
		t.Errorf("provider's origin %q does not say the model implied it", detail)
	}
}

func TestAnAbsentOptionalIsANilPointer(t *testing.T) {
	t.Parallel()
	// Cloud mode's default temperature is the provider's own: absent, not 0.
	server := testserver.Start(t, []string{"--mode", "cloud"}, "ANTHROPIC_API_KEY="+anthropicKey)
	answer, err := client(t, server.Target, nil).ResolveLLMConfig(guard(t), &llmconfigv1.ResolveLLMConfigRequest{})
	if err != nil {
		t.Fatal(llmconfig.FromError(err))
	}
	if answer.GetConfig().Temperature != nil {
		t.Errorf("temperature %v, want nil (the provider's default)", *answer.GetConfig().Temperature)
	}
	if answer.GetConfig().GetApiKey() != "" || !answer.GetConfig().GetApiKeyPresent() {
		t.Errorf("without include_secrets: key %q, present %v; want no key, present", answer.GetConfig().GetApiKey(),
			answer.GetConfig().GetApiKeyPresent())
	}
}

func TestTwoBadOverridesDecodeWithEveryReason(t *testing.T) {
	t.Parallel()
	server := testserver.Start(t, nil)
	_, err := client(t, server.Target, nil).ResolveLLMConfig(guard(t), &llmconfigv1.ResolveLLMConfigRequest{
		Overrides: &llmconfigv1.LLMSettings{Provider: proto.String("anthropic"), ApiKey: proto.String(anthropicKey),
			Temperature: proto.Float64(3), MaxTokens: proto.Int32(0)},
	})
	decoded := llmconfig.FromError(err)
	if decoded == nil || decoded.Code != codes.InvalidArgument {
		t.Fatalf("got %v, want INVALID_ARGUMENT", err)
	}
	got := map[string]llmconfig.Violation{}
	for _, violation := range decoded.Violations {
		got[violation.Subject] = violation
	}
	for subject, field := range map[string]string{"overrides.temperature": "temperature", "overrides.max_tokens": "max_tokens"} {
		violation := got[subject]
		if violation.Reason != "OUT_OF_RANGE" || violation.Field != field || !strings.Contains(violation.Description, "anthropic") {
			t.Errorf("%s: %+v, want reason OUT_OF_RANGE, field %s and what anthropic allows", subject, violation, field)
		}
	}
	if len(decoded.Violations) != 2 || decoded.Reason != "OUT_OF_RANGE" {
		t.Errorf("%d violations, reason %q; want 2, OUT_OF_RANGE", len(decoded.Violations), decoded.Reason)
	}
}

func TestServerPreconditionNamesTheVariableToSet(t *testing.T) {
	t.Parallel()
	server := testserver.Start(t, nil)
	_, err := client(t, server.Target, nil).ResolveLLMConfig(guard(t), &llmconfigv1.ResolveLLMConfigRequest{Mode: "cloud"})
	decoded := llmconfig.FromError(err)
	if decoded == nil || decoded.Code != codes.FailedPrecondition || len(decoded.Violations) != 1 {
		t.Fatalf("got %v, want FAILED_PRECONDITION with one violation", err)
	}
	violation := decoded.Violations[0]
	want := llmconfig.Violation{Subject: "ANTHROPIC_API_KEY", Field: "api_key", Reason: "API_KEY_MISSING"}
	if violation.Subject != want.Subject || violation.Field != want.Field || violation.Reason != want.Reason ||
		!strings.Contains(violation.Description, "ANTHROPIC_API_KEY_FILE") {
		t.Errorf("violation %+v, want %+v and the key file variable that fixes it", violation, want)
	}
}

func TestEveryMissingRunnerValueIsListedWithItsReason(t *testing.T) {
	t.Parallel()
	server := testserver.Start(t, nil, "ANTHROPIC_API_KEY="+anthropicKey)
	_, err := client(t, server.Target, nil).ResolveRunnerConfig(guard(t), &llmconfigv1.ResolveRunnerConfigRequest{Mode: "cloud"})
	decoded := llmconfig.FromError(err)
	if decoded == nil || decoded.Code != codes.FailedPrecondition {
		t.Fatalf("got %v, want FAILED_PRECONDITION", err)
	}
	fields := map[string]string{}
	for _, violation := range decoded.Violations {
		fields[violation.Field] = violation.Subject
		if violation.Reason == "" || violation.Description == "" {
			t.Errorf("violation %+v lacks a reason or a description", violation)
		}
	}
	for field, subject := range map[string]string{"temporal.address": "TEMPORAL_SERVICE_ADDRESS", "redis.host": "REDIS_HOST"} {
		if fields[field] != subject {
			t.Errorf("%s: subject %q, want %s (all: %v)", field, fields[field], subject, fields)
		}
	}
}
