package llmconfig_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/stigmer/llmconfig/go/internal/testserver"
	"github.com/stigmer/llmconfig/go/llmconfig"
	llmconfigv1 "github.com/stigmer/llmconfig/go/llmconfig/v1"
)

// watching runs llmconfig.Watch until the test ends; its events arrive on the channel, and
// what Watch returned on the other.
func watching(t *testing.T, target string, request *llmconfigv1.WatchLLMConfigRequest) (<-chan *llmconfigv1.WatchLLMConfigEvent, <-chan error, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(guard(t))
	events, ended, done := make(chan *llmconfigv1.WatchLLMConfigEvent, 16), make(chan error, 1), make(chan struct{})
	go func() {
		defer close(done)
		ended <- llmconfig.Watch(ctx, client(t, target, nil), request,
			func(event *llmconfigv1.WatchLLMConfigEvent) error {
				events <- event
				return nil
			})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return events, ended, cancel
}

func next(t *testing.T, events <-chan *llmconfigv1.WatchLLMConfigEvent) *llmconfigv1.WatchLLMConfigEvent {
	t.Helper()
	select {
	case event := <-events:
		return event
	case <-guard(t).Done():
		t.Fatal("no watch event (hang guard)")
		return nil
	}
}

func TestWatchSeesAConfigFileEdit(t *testing.T) {
	t.Parallel()
	config := filepath.Join(t.TempDir(), "llmconfig.yaml")
	testserver.WriteFile(t, config, "llm:\n  model: llama3.2\n")
	server := testserver.Start(t, []string{"--config", config})
	events, ended, cancel := watching(t, server.Target, &llmconfigv1.WatchLLMConfigRequest{})
	if model := next(t, events).GetConfig().GetConfig().GetModel(); model != "llama3.2:3b" {
		t.Fatalf("first event: model %q, want llama3.2:3b", model)
	}
	testserver.WriteFile(t, config, "llm:\n  model: qwen2.5-coder:14b\n")
	if model := next(t, events).GetConfig().GetConfig().GetModel(); model != "qwen2.5-coder:14b" {
		t.Errorf("after the edit: model %q, want qwen2.5-coder:14b", model)
	}
	cancel()
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch returned %v after its context ended, want context.Canceled", err)
	}
}

func TestWatchCarriesAnInvalidConfigAsAnErrorEventAndGoesOn(t *testing.T) {
	t.Parallel()
	config := filepath.Join(t.TempDir(), "llmconfig.yaml")
	testserver.WriteFile(t, config, "llm:\n  temperature: 0.5\n")
	server := testserver.Start(t, []string{"--config", config})
	// The server's own provider (ollama) allows 0–2; this caller's (anthropic, with a model
	// that takes a temperature: the 5.x family takes only its default) 0–1.
	overrides := &llmconfigv1.LLMSettings{Provider: proto.String("anthropic"), Model: proto.String("claude-haiku-4-5"),
		ApiKey: proto.String(anthropicKey)}
	events, _, _ := watching(t, server.Target, &llmconfigv1.WatchLLMConfigRequest{Overrides: overrides})
	next(t, events)
	testserver.WriteFile(t, config, "llm:\n  temperature: 1.5\n")
	event := next(t, events)
	decoded := llmconfig.FromStatus(event.GetError())
	if decoded == nil || decoded.Code != codes.FailedPrecondition || len(decoded.Violations) != 1 ||
		decoded.Violations[0].Reason != "OUT_OF_RANGE" || decoded.Violations[0].Field != "temperature" {
		t.Fatalf("event %v, want an error event: FAILED_PRECONDITION, temperature OUT_OF_RANGE", event)
	}
	testserver.WriteFile(t, config, "llm:\n  temperature: 0.25\n")
	if temperature := next(t, events).GetConfig().GetConfig().Temperature; temperature == nil || *temperature != 0.25 {
		t.Errorf("after the fix: temperature %v, want 0.25", temperature)
	}
}

func TestWatchResumesAfterAServerRestartWithoutRepeating(t *testing.T) {
	t.Parallel()
	config := filepath.Join(t.TempDir(), "llmconfig.yaml")
	testserver.WriteFile(t, config, "llm:\n  model: llama3.2\n")
	server := testserver.Start(t, []string{"--config", config, "--metrics-listen", "127.0.0.1:0"})
	events, _, _ := watching(t, server.Target, &llmconfigv1.WatchLLMConfigRequest{})
	first := next(t, events)

	server.Restart(t)
	hang := guard(t)
	for server.Started(t, "WatchLLMConfig") == 0 { // the watch is back on the new server
		select {
		case event := <-events:
			t.Fatalf("an event after the restart though nothing changed: %v", event)
		case <-hang.Done():
			t.Fatal("the watch did not come back (hang guard)")
		case <-time.After(50 * time.Millisecond):
		}
	}
	// It came back with the revision it had, so the server sent nothing; the next event is
	// the next change.
	testserver.WriteFile(t, config, "llm:\n  model: qwen2.5-coder:14b\n")
	event := next(t, events)
	if model := event.GetConfig().GetConfig().GetModel(); model != "qwen2.5-coder:14b" {
		t.Errorf("after the restart: model %q (revision %s; before it %s), want the change to qwen2.5-coder:14b", model,
			event.GetConfig().GetRevision(), first.GetConfig().GetRevision())
	}
}

func TestCallsReconnectAfterAServerRestart(t *testing.T) {
	t.Parallel()
	server := testserver.Start(t, nil)
	calls := client(t, server.Target, nil)
	if _, err := calls.ResolveLLMConfig(guard(t), &llmconfigv1.ResolveLLMConfigRequest{}); err != nil {
		t.Fatal(llmconfig.FromError(err))
	}
	server.Restart(t)
	// The same connection: gRPC redials it, and the call waits for that (Dial's default)
	// instead of failing while the reconnection backoff lasts.
	if _, err := calls.ResolveLLMConfig(guard(t), &llmconfigv1.ResolveLLMConfigRequest{}); err != nil {
		t.Fatalf("after the restart: %v", llmconfig.FromError(err))
	}
}

func TestACallMadeBeforeTheServerStartsWaitsForIt(t *testing.T) {
	t.Parallel()
	listener, err := net.Listen("tcp", "127.0.0.1:0") // a free port, for the server to come
	if err != nil {
		t.Fatal(err)
	}
	address := listener.Addr().String()
	listener.Close()
	answered := make(chan error, 1)
	go func() {
		_, err := client(t, address, nil).ResolveLLMConfig(guard(t), &llmconfigv1.ResolveLLMConfigRequest{})
		answered <- err
	}()
	select {
	case err := <-answered:
		t.Fatalf("the call ended before there was a server: %v", llmconfig.FromError(err))
	case <-time.After(500 * time.Millisecond): // it is waiting; the hang guard bounds the rest
	}
	testserver.Start(t, []string{"--listen", address})
	if err := <-answered; err != nil {
		t.Errorf("the call made before the server started: %v", llmconfig.FromError(err))
	}
}
