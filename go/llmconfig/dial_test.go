package llmconfig_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/stigmer/llmconfig/go/internal/testserver"
	"github.com/stigmer/llmconfig/go/llmconfig"
	llmconfigv1 "github.com/stigmer/llmconfig/go/llmconfig/v1"
)

func TestUnixSocketTargetFromTheEnvironmentServesSecrets(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "llmconfig.sock")
	server := testserver.Start(t, []string{"--listen", "unix:" + socket}, "ANTHROPIC_API_KEY="+anthropicKey)
	t.Setenv(llmconfig.TargetEnv, server.Target)
	answer, err := client(t, "", nil).ResolveLLMConfig(guard(t), &llmconfigv1.ResolveLLMConfigRequest{
		Mode: "cloud", IncludeSecrets: true,
	})
	if err != nil {
		t.Fatal(llmconfig.FromError(err))
	}
	if answer.GetConfig().GetApiKey() != anthropicKey {
		t.Errorf("api_key %q over the Unix socket, want the key", answer.GetConfig().GetApiKey())
	}
}

func TestTLSWithATokenFileFromTheEnvironment(t *testing.T) {
	pki := testserver.NewPKI(t)
	const token = "llmc_go-test-runner-token"
	tokens, tokenFile := testserver.TokensFile(t, "runner", token, "resolve", "secrets")
	server := testserver.Start(t, []string{"--tls-cert", pki.ServerCert, "--tls-key", pki.ServerKey, "--tokens-file", tokens},
		"ANTHROPIC_API_KEY="+anthropicKey)
	t.Setenv(llmconfig.TargetEnv, server.Target)
	t.Setenv(llmconfig.CAFileEnv, pki.CA)

	t.Run("a token with the secrets scope gets the key", func(t *testing.T) {
		t.Setenv(llmconfig.TokenFileEnv, tokenFile)
		answer, err := client(t, "", nil).ResolveLLMConfig(guard(t), &llmconfigv1.ResolveLLMConfigRequest{
			Mode: "cloud", IncludeSecrets: true,
		})
		if err != nil {
			t.Fatal(llmconfig.FromError(err))
		}
		if answer.GetConfig().GetApiKey() != anthropicKey {
			t.Errorf("api_key %q, want the key", answer.GetConfig().GetApiKey())
		}
	})
	t.Run("no token is UNAUTHENTICATED with reason TOKEN_MISSING", func(t *testing.T) {
		_, err := client(t, "", nil).ResolveLLMConfig(guard(t), &llmconfigv1.ResolveLLMConfigRequest{})
		if decoded := llmconfig.FromError(err); decoded == nil || decoded.Code != codes.Unauthenticated || decoded.Reason != "TOKEN_MISSING" {
			t.Errorf("got %v, want UNAUTHENTICATED, TOKEN_MISSING", decoded)
		}
	})
	t.Run("a token without the health scope is PERMISSION_DENIED naming it", func(t *testing.T) {
		_, err := client(t, "", &llmconfig.Options{Token: token}).CheckProviderHealth(guard(t), &llmconfigv1.CheckProviderHealthRequest{})
		decoded := llmconfig.FromError(err)
		if decoded == nil || decoded.Code != codes.PermissionDenied || decoded.Reason != "SCOPE_MISSING" || decoded.Metadata["scope"] != "health" {
			t.Errorf("got %+v, want PERMISSION_DENIED, SCOPE_MISSING, scope health", decoded)
		}
	})
}

func TestDialRefusesWhatItCannotUseAndSaysWhy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spaced := filepath.Join(dir, "spaced.token")
	if err := os.WriteFile(spaced, []byte("two words\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pki := testserver.NewPKI(t)
	for name, c := range map[string]struct {
		target string
		opts   llmconfig.Options
		says   string
	}{
		"a token with a space":             {"127.0.0.1:1", llmconfig.Options{TokenFile: spaced}, "printable ASCII without spaces"},
		"a missing CA file":                {"127.0.0.1:1", llmconfig.Options{CAFile: filepath.Join(dir, "none.pem")}, "none.pem"},
		"a CA file that holds no PEM":      {"127.0.0.1:1", llmconfig.Options{CAFile: spaced}, "holds no PEM certificate"},
		"a client certificate without key": {"127.0.0.1:1", llmconfig.Options{CAFile: pki.CA, CertFile: pki.ServerCert}, "both a cert file and a key file"},
		"TLS to a Unix socket":             {"unix:/run/x.sock", llmconfig.Options{CAFile: pki.CA}, "Unix socket"},
	} {
		opts := c.opts
		if _, err := llmconfig.Dial(c.target, &opts); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: err %v, want one that says %q", name, err, c.says)
		}
	}
}

// python runs code in the venv the server is installed in and returns what it printed.
func python(t *testing.T, code string) string {
	t.Helper()
	out, err := exec.Command(testserver.Python(t), "-c", code).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func TestServiceConfigIsThePythonClients(t *testing.T) {
	t.Parallel()
	var python3, golang map[string]any
	if err := json.Unmarshal([]byte(python(t, "from llmconfig._channel import CHANNEL_OPTIONS; "+
		"print(dict(CHANNEL_OPTIONS)['grpc.service_config'])")), &python3); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(llmconfig.ServiceConfig), &golang); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(golang, python3) {
		t.Errorf("Go service config %v, Python's %v", golang, python3)
	}
}

func TestKeepaliveIsOneTheServerAccepts(t *testing.T) {
	t.Parallel()
	var options map[string]int64
	if err := json.Unmarshal([]byte(python(t, "import json; from llmconfig_server.app import CHANNEL_OPTIONS; "+
		"print(json.dumps(dict(CHANNEL_OPTIONS)))")), &options); err != nil {
		t.Fatal(err)
	}
	// Pinging more often than this while no data flows gets GOAWAY "too_many_pings".
	floor := time.Duration(options["grpc.http2.min_ping_interval_without_data_ms"]) * time.Millisecond
	age := time.Duration(options["grpc.max_connection_age_ms"]) * time.Millisecond
	if floor == 0 || age == 0 {
		t.Fatalf("the server's options no longer name these settings: %v", options)
	}
	if llmconfig.Keepalive.Time <= floor || llmconfig.Keepalive.Time >= age {
		t.Errorf("keepalive %s: the server wants more than %s, and the connection lives %s", llmconfig.Keepalive.Time,
			floor, age)
	}
	t.Logf("server: pings at most every %s without data, connections live %s; client pings every %s",
		floor, age, llmconfig.Keepalive.Time)
}
