// Package testserver runs the real llmconfig-server for the Go tests, as tests/conftest.py's
// server_process does: the venv's command, a home and working directory of the test's own,
// 127.0.0.1:0 unless told otherwise, the address read from its "serving on ..." line. Beside it:
// an Ollama on loopback that answers /api/version and /api/tags as Ollama does, and a
// throwaway CA for TLS.
package testserver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StartTimeout is a hang guard for a server that never says it serves, not a speed assertion.
const StartTimeout = 60 * time.Second

// Command is the llmconfig-server to run: $LLMCONFIG_SERVER (`make go-test` sets it to the
// venv's), else .venv/bin/llmconfig-server in a folder above the test's.
func Command(t testing.TB) string {
	if command := os.Getenv("LLMCONFIG_SERVER"); command != "" {
		return command
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for ; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		candidate := filepath.Join(dir, ".venv", "bin", "llmconfig-server")
		if _, err := os.Stat(candidate); err == nil {
			return candidate
		}
	}
	t.Fatal("no llmconfig-server: run `make go-test`, or set LLMCONFIG_SERVER")
	return ""
}

// Python is the interpreter of the venv the server is installed in.
func Python(t testing.TB) string {
	return filepath.Join(filepath.Dir(Command(t)), "python")
}

// Server is one llmconfig-server process.
type Server struct {
	Target string // "127.0.0.1:PORT" or "unix:PATH", from its "serving on" line
	Home   string // its HOME (and working directory's parent)
	args   []string
	env    []string
	cmd    *exec.Cmd
	log    *lockedBuffer
	done   chan struct{}
}

// Start runs llmconfig-server with args (--listen 127.0.0.1:0 unless args has a --listen) and
// env (NAME=value; nothing else of the test's environment but PATH), and waits until it serves.
// The test's cleanup stops it.
func Start(t testing.TB, args []string, env ...string) *Server {
	t.Helper()
	home := t.TempDir()
	if err := os.Mkdir(filepath.Join(home, "cwd"), 0o755); err != nil {
		t.Fatal(err)
	}
	listen := false
	for _, arg := range args {
		listen = listen || arg == "--listen"
	}
	if !listen {
		args = append([]string{"--listen", "127.0.0.1:0"}, args...)
	}
	s := &Server{Home: home, args: args, env: env}
	s.start(t)
	t.Cleanup(func() { s.kill() })
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	s.cmd = exec.Command(Command(t), s.args...)
	s.cmd.Dir = filepath.Join(s.Home, "cwd")
	s.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.Home, "LANG=C.UTF-8",
		"PYTHONUNBUFFERED=1"}, s.env...)
	dieWithTest(s.cmd)
	s.log = &lockedBuffer{}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.done = make(chan struct{})
	serving := make(chan string, 1)
	go func() {
		defer close(s.done)
		lines := bufio.NewScanner(stderr)
		pattern := regexp.MustCompile(`serving on (\S+)`)
		for lines.Scan() {
			s.log.WriteLine(lines.Text())
			if match := pattern.FindStringSubmatch(lines.Text()); match != nil {
				select {
				case serving <- match[1]:
				default:
				}
			}
		}
		_ = s.cmd.Wait()
	}()
	select {
	case s.Target = <-serving:
	case <-s.done:
		t.Fatalf("llmconfig-server exited before serving:\n%s", s.log)
	case <-time.After(StartTimeout):
		s.kill()
		t.Fatalf("llmconfig-server did not serve within %s:\n%s", StartTimeout, s.log)
	}
}

// Stop ends the server as an orchestrator does (SIGTERM) and waits for it.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(StartTimeout):
		s.kill()
		t.Fatalf("llmconfig-server did not stop on SIGTERM:\n%s", s.log)
	}
}

// Restart starts the server again (stopping it first if it runs) on the address it had.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	select {
	case <-s.done:
	default:
		s.Stop(t)
	}
	for i := range s.args {
		if i > 0 && s.args[i-1] == "--listen" && strings.HasSuffix(s.args[i], ":0") {
			s.args[i] = s.Target
		}
	}
	s.start(t)
}

// Started is how many calls of method (e.g. "WatchLLMConfig") this run of the server has
// started, read from its Prometheus metrics: start it with --metrics-listen 127.0.0.1:0.
func (s *Server) Started(t testing.TB, method string) int {
	t.Helper()
	// The address is in the startup report, a few lines after "serving on".
	var metrics []string
	for deadline := time.Now().Add(StartTimeout); metrics == nil; time.Sleep(20 * time.Millisecond) {
		if metrics = regexp.MustCompile(`metrics: (http://\S+)`).FindStringSubmatch(s.Log()); metrics == nil && time.Now().After(deadline) {
			t.Fatalf("no metrics address in the server's log (--metrics-listen):\n%s", s.Log())
		}
	}
	response, err := (&http.Client{Timeout: StartTimeout}).Get(metrics[1]) // a hang guard
	if err != nil {
		t.Fatal(err)
	}
	defer response.Body.Close()
	text, err := io.ReadAll(response.Body)
	if err != nil {
		t.Fatal(err)
	}
	count := regexp.MustCompile(`grpc_server_started_total\{grpc_method="` + regexp.QuoteMeta(method) + `"[^}]*\} (\d+)`).
		FindSubmatch(text)
	if count == nil {
		t.Fatalf("no grpc_server_started_total for %s in:\n%s", method, text)
	}
	n, _ := strconv.Atoi(string(count[1]))
	return n
}

// Log is what the server has written so far.
func (s *Server) Log() string { return s.log.String() }

func (s *Server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// WriteFile writes text to path as an editor or a ConfigMap swap does: beside it, then
// renamed over it, so the server never reads half a file.
func WriteFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path+".new", []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// Ollama is an HTTP server on loopback that answers as Ollama does: GET /api/version and GET
// /api/tags listing the pulled models. It stops with the test, or at Close.
func Ollama(t testing.TB, version string, pulled ...string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/api/version", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]string{"version": version})
	})
	mux.HandleFunc("/api/tags", func(w http.ResponseWriter, _ *http.Request) {
		models := []map[string]any{}
		for _, name := range pulled {
			models = append(models, map[string]any{
				"name": name, "model": name, "modified_at": "2025-05-01T10:00:00Z", "size": 4683087332,
				"digest":  "sha256:" + strings.Repeat("0", 64),
				"details": map[string]string{"format": "gguf", "family": strings.SplitN(name, ":", 2)[0]},
			})
		}
		writeJSON(w, map[string]any{"models": models})
	})
	server := httptest.NewServer(mux)
	t.Cleanup(server.Close)
	return server
}

func writeJSON(w http.ResponseWriter, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(body)
}

type lockedBuffer struct {
	mu   sync.Mutex
	text bytes.Buffer
}

func (b *lockedBuffer) WriteLine(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprintln(&b.text, line)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.text.String()
}
