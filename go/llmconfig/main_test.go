package llmconfig_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stigmer/llmconfig/go/llmconfig"
	llmconfigv1 "github.com/stigmer/llmconfig/go/llmconfig/v1"
)

const anthropicKey = "sk-ant-api03-TESTKEYtestkeyTESTKEYtestkey-f2c9"

// hangGuard bounds every call and wait of a test; it is never what a test asserts.
const hangGuard = 60 * time.Second

func TestMain(m *testing.M) {
	// Dial falls back to these; a developer's own must not steer the tests.
	for _, entry := range os.Environ() {
		if strings.HasPrefix(entry, "STIGMER_LLMCONFIG_") {
			os.Unsetenv(strings.SplitN(entry, "=", 2)[0])
		}
	}
	os.Exit(m.Run())
}

func client(t *testing.T, target string, opts *llmconfig.Options) llmconfigv1.LLMConfigServiceClient {
	t.Helper()
	conn, err := llmconfig.Dial(target, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return llmconfigv1.NewLLMConfigServiceClient(conn)
}

func guard(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}

// environ is a NAME=value list as a map.
func environ(list []string) map[string]string {
	env := map[string]string{}
	for _, entry := range list {
		parts := strings.SplitN(entry, "=", 2)
		env[parts[0]] = parts[1]
	}
	return env
}
