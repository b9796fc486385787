// Command daemon is what Stigmer's daemon does with llmconfig: gate `stigmer server` on the
// provider's health, start the agent runner's container with the environment llmconfig
// resolves for it, and start it again each time that configuration changes.
//
//	STIGMER_LLMCONFIG_TARGET=unix:/run/stigmer/llmconfig.sock go run ./examples/daemon
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/stigmer/llmconfig/go/llmconfig"
	llmconfigv1 "github.com/stigmer/llmconfig/go/llmconfig/v1"
)

// docker runs the containers; image is the agent runner's; workspace is the folder its
// sandbox gets.
var (
	docker    = "docker"
	image     = "stigmer-agent-runner:local"
	workspace = os.ExpandEnv("$HOME/.stigmer/workspace")
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "daemon:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer) error {
	// The target, token and CA: STIGMER_LLMCONFIG_TARGET, _TOKEN_FILE, _CA_FILE (or Options).
	conn, err := llmconfig.Dial("", nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := llmconfigv1.NewLLMConfigServiceClient(conn)

	// Gate `stigmer server` on the provider: the check spends no tokens.
	call, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	health, err := client.CheckProviderHealth(call, &llmconfigv1.CheckProviderHealthRequest{})
	if err != nil {
		return llmconfig.FromError(err)
	}
	if !health.GetHealthy() {
		return fmt.Errorf("%s: %s", health.GetStatus(), health.GetMessage())
	}
	fmt.Fprintf(out, "provider ready: %s %s\n", health.GetProvider(), health.GetModel())

	// Start the runner now, and again each time its LLM configuration changes. Watch
	// reconnects across llmconfig restarts by itself.
	request := &llmconfigv1.WatchLLMConfigRequest{Network: "docker"}
	return llmconfig.Watch(ctx, client, request, func(event *llmconfigv1.WatchLLMConfigEvent) error {
		if event.GetError() != nil { // the configuration turned invalid: keep the runner as it is
			fmt.Fprintln(out, "runner kept:", llmconfig.FromStatus(event.GetError()))
			return nil
		}
		if err := startRunner(ctx, client, out); err != nil {
			fmt.Fprintln(out, "runner not started:", err) // the next change tries again
		}
		return nil
	})
}

func startRunner(ctx context.Context, client llmconfigv1.LLMConfigServiceClient, out io.Writer) error {
	call, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	runner, err := client.ResolveRunnerConfig(call, &llmconfigv1.ResolveRunnerConfigRequest{
		Network: "docker", IncludeSecrets: true, // keys need a Unix socket or a token with the secrets scope
	})
	if err != nil {
		return llmconfig.FromError(err)
	}
	env, err := llmconfig.RunnerEnv(runner, true)
	if err != nil {
		return err
	}
	env = env.With("SANDBOX_ROOT_DIR", "/workspace") // where the container sees the folder below

	_ = exec.CommandContext(ctx, docker, "rm", "--force", "stigmer-agent-runner").Run()
	args := append([]string{"run", "--detach", "--name", "stigmer-agent-runner", "--restart", "unless-stopped",
		"--add-host", "host.docker.internal:host-gateway", "--volume", workspace + ":/workspace"},
		env.DockerArgs()...) // -e NAME=value, and -e NAME for a secret
	cmd := exec.CommandContext(ctx, docker, append(args, image)...)
	cmd.Env = append(os.Environ(), env.Environ()...) // the secrets' values: never in the command line
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker run: %v: %s", err, output)
	}
	config := runner.GetLlm().GetConfig()
	fmt.Fprintf(out, "runner started: %s %s at %s (revision %s)\n", config.GetProvider(), config.GetModel(),
		config.GetBaseUrl(), runner.GetRevision())
	return nil
}
