package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stigmer/llmconfig/go/internal/testserver"
	"github.com/stigmer/llmconfig/go/llmconfig"
)

const hangGuard = 60 * time.Second

// fakeDocker stands in for the docker command: it appends its arguments and the runner
// variables of its environment to docker.log beside it, and answers as `docker run -d` does.
func fakeDocker(t *testing.T) (log string) {
	dir := t.TempDir()
	log = filepath.Join(dir, "docker.log")
	script := "#!/bin/sh\n{ echo \"ARGS $*\"; env | grep -E '^(MODE|STIGMER_|OLLAMA_|TEMPORAL_|SANDBOX_)' | sort; } >> " +
		log + "\necho 0123456789ab\n"
	docker = filepath.Join(dir, "docker")
	if err := os.WriteFile(docker, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return log
}

// running runs the example until the test ends; its output lines arrive on the channel, and
// what run returned on the other.
func running(t *testing.T) (<-chan string, <-chan error, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	reader, writer := io.Pipe()
	lines, ended, done := make(chan string, 16), make(chan error, 1), make(chan struct{})
	go func() {
		scanner := bufio.NewScanner(reader)
		for scanner.Scan() {
			lines <- scanner.Text()
		}
	}()
	go func() {
		defer close(done)
		ended <- run(ctx, writer)
		writer.Close()
	}()
	t.Cleanup(func() { cancel(); <-done })
	return lines, ended, cancel
}

func expect(t *testing.T, lines <-chan string, pattern string) string {
	t.Helper()
	select {
	case line := <-lines:
		if !regexp.MustCompile(pattern).MatchString(line) {
			t.Fatalf("printed %q, want %q", line, pattern)
		}
		return line
	case <-time.After(hangGuard):
		t.Fatalf("nothing printed (hang guard); want %q", pattern)
		return ""
	}
}

func TestTheDaemonStartsTheRunnerAndAgainOnAChange(t *testing.T) {
	log := fakeDocker(t)
	ollama := testserver.Ollama(t, "0.6.2", "llama3.2:3b", "qwen2.5-coder:14b")
	config := filepath.Join(t.TempDir(), "llmconfig.yaml")
	testserver.WriteFile(t, config, "llm:\n  model: llama3.2\n")
	socket := filepath.Join(t.TempDir(), "llmconfig.sock")
	server := testserver.Start(t, []string{"--listen", "unix:" + socket, "--config", config, "--probe-timeout", "20"},
		"OLLAMA_HOST="+ollama.Listener.Addr().String())
	t.Setenv(llmconfig.TargetEnv, server.Target)

	lines, ended, cancel := running(t)
	expect(t, lines, `^provider ready: ollama llama3.2:3b$`)
	expect(t, lines, `^runner started: ollama llama3.2:3b at http://host.docker.internal:\d+ \(revision \w+\)$`)
	testserver.WriteFile(t, config, "llm:\n  model: qwen2.5-coder:14b\n")
	expect(t, lines, `^runner started: ollama qwen2.5-coder:14b at `)
	cancel()
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Errorf("run returned %v when its context ended, want context.Canceled", err)
	}

	text, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	calls := strings.Split(string(text), "ARGS ")
	if len(calls) != 5 { // "", rm, run, rm, run
		t.Fatalf("docker ran %d times, want rm and run twice:\n%s", len(calls)-1, text)
	}
	run := calls[2]
	for _, want := range []string{
		"run --detach --name stigmer-agent-runner", "-e MODE=local -e STIGMER_LLM_PROVIDER=ollama -e STIGMER_LLM_MODEL=llama3.2:3b",
		"-e STIGMER_API_KEY -e", "-e SANDBOX_ROOT_DIR=/workspace", " stigmer-agent-runner:local\n",
		"\nSTIGMER_API_KEY=dummy-local-key\n", "\nOLLAMA_BASE_URL=http://host.docker.internal:",
	} {
		if !strings.Contains(run, want) {
			t.Errorf("docker run lacks %q:\n%s", want, run)
		}
	}
	if strings.Contains(strings.SplitN(run, "\n", 2)[0], "dummy-local-key") {
		t.Errorf("a secret is in docker's command line: %s", run)
	}
}

func TestTheDaemonDoesNotStartWhenTheProviderIsDown(t *testing.T) {
	log := fakeDocker(t)
	ollama := testserver.Ollama(t, "0.6.2", "qwen2.5-coder:7b")
	ollama.Close() // nothing listens there any more
	server := testserver.Start(t, []string{"--probe-timeout", "20"}, "OLLAMA_HOST="+ollama.Listener.Addr().String())
	t.Setenv(llmconfig.TargetEnv, server.Target)

	_, ended, _ := running(t)
	if err := <-ended; err == nil || !strings.Contains(err.Error(), "HEALTH_STATUS_UNREACHABLE") ||
		!strings.Contains(err.Error(), "ollama serve") {
		t.Errorf("run returned %v, want UNREACHABLE and the command that fixes it", err)
	}
	if _, err := os.Stat(log); err == nil {
		t.Error("docker ran though the provider is down")
	}
}

// docs/go.md shows this program; it must be this file, as tested.
func TestTheDocsShowThisProgram(t *testing.T) {
	program, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "go.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)<!-- go: go/examples/daemon/main.go -->\n```go\n(.*?)```").FindSubmatch(page)
	if block == nil {
		t.Fatal("docs/go.md has no block marked <!-- go: go/examples/daemon/main.go -->")
	}
	if string(block[1]) != string(program) {
		t.Error("docs/go.md's copy of go/examples/daemon/main.go differs from the file: paste the file into it")
	}
}

// docs/go.md shows the retry policy as JSON; it must be the one Dial applies.
func TestTheDocsShowTheRetryPolicy(t *testing.T) {
	page, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "go.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)<!-- go: llmconfig.ServiceConfig -->\n```json\n(.*?)```").FindSubmatch(page)
	if block == nil {
		t.Fatal("docs/go.md has no block marked <!-- go: llmconfig.ServiceConfig -->")
	}
	var shown, applied any
	if err := json.Unmarshal(block[1], &shown); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(llmconfig.ServiceConfig), &applied); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(shown, applied) {
		t.Errorf("docs/go.md shows %v; Dial applies %v", shown, applied)
	}
}
