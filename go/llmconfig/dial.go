// Package llmconfig is the Go side of llmconfig's client: Dial (the targets, credentials,
// retry policy and keepalive of the Python client), RunnerEnv (a ResolveRunnerConfigResponse as
// the runner container's environment), Watch (WatchLLMConfig kept open across server restarts)
// and FromError (google.rpc error details as one error type). The RPCs themselves are the
// generated llmconfigv1.LLMConfigServiceClient's.
package llmconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// The target and credentials come from these variables when Dial is not given them, exactly as
// for the Python client (client/llmconfig/_channel.py), so one runner image or daemon
// environment serves both.
const (
	DefaultTarget = "127.0.0.1:50061"
	TargetEnv     = "STIGMER_LLMCONFIG_TARGET"
	TokenEnv      = "STIGMER_LLMCONFIG_TOKEN"
	TokenFileEnv  = "STIGMER_LLMCONFIG_TOKEN_FILE"
	CAFileEnv     = "STIGMER_LLMCONFIG_CA_FILE"
	CertFileEnv   = "STIGMER_LLMCONFIG_CERT_FILE"
	KeyFileEnv    = "STIGMER_LLMCONFIG_KEY_FILE"
)

// ServiceConfig is the Python client's: UNAVAILABLE (the service down, restarting, not started
// yet) and RESOURCE_EXHAUSTED (the server at a limit, saying when to come back with
// grpc-retry-pushback-ms) are retried with exponential backoff, 5 attempts, 0.2 s → 2 s;
// nothing else is retried, because every other status is a real answer. grpc-go before 1.41 (Debian 12 ships 1.33)
// applies a retry policy only when GRPC_GO_RETRY=on is in the environment.
const ServiceConfig = `{"methodConfig": [{"name": [{"service": "llmconfig.v1.LLMConfigService"}], ` +
	`"retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.2s", "maxBackoff": "2s", ` +
	`"backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"]}}]}`

// Keepalive is what the server accepts: it allows a client ping every 20 s at most while no
// data flows (a client pinging more often is cut off with GOAWAY "too_many_pings") and ends
// every connection after 30 minutes (plus 1 minute for the calls on it to finish), so a ping
// every 30 s finds a dead server or a dropped route on a quiet Watch stream well within that.
var Keepalive = keepalive.ClientParameters{
	Time:                30 * time.Second,
	Timeout:             10 * time.Second,
	PermitWithoutStream: false, // an idle connection needs no probing: the next call redials
}

// reconnect mirrors the Python client's 0.2 s → 2 s reconnection backoff, so a server that
// starts a moment after its clients is picked up quickly.
var reconnect = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 200 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
	MinConnectTimeout: 20 * time.Second,
}

// fileLimit bounds what is read from a token, CA, certificate or key file.
const fileLimit = 1 << 20

// Options say how to reach the service. A field left empty falls back to its environment
// variable, as in the Python client; all empty means plaintext and no token (a loopback or
// Unix-socket server without a tokens file).
type Options struct {
	// Token is sent as "authorization: Bearer <token>" on every call. Else TokenFile; with
	// neither, STIGMER_LLMCONFIG_TOKEN, else STIGMER_LLMCONFIG_TOKEN_FILE.
	Token     string
	TokenFile string
	// CAFile turns TLS on: the PEM CA that signed the server's certificate (else
	// STIGMER_LLMCONFIG_CA_FILE).
	CAFile string
	// CertFile and KeyFile are a client certificate for a server that requires mTLS (else
	// STIGMER_LLMCONFIG_CERT_FILE and _KEY_FILE); they need CAFile.
	CertFile string
	KeyFile  string
	// DialOptions are applied last, so they win over Dial's own.
	DialOptions []grpc.DialOption
}

// Dial opens a connection to llmconfig at target: "host:port", "unix:PATH" (a Unix socket; no
// TLS there, its file mode guards it), or any other gRPC target ("dns:///host:port"). An empty
// target means STIGMER_LLMCONFIG_TARGET, else 127.0.0.1:50061. Dial does not wait for the
// server; its calls do, until their deadline, and an UNAVAILABLE answer is retried as
// ServiceConfig says. The error names the variable or file at fault; it is nil for a server
// that is merely down.
func Dial(target string, opts *Options) (*grpc.ClientConn, error) {
	if opts == nil {
		opts = &Options{}
	}
	if target == "" {
		target = envOr("", TargetEnv)
	}
	if target == "" {
		target = DefaultTarget
	}
	dial := []grpc.DialOption{
		// grpc-go fails a call at once while its connection is down (the retry policy covers
		// answers, not connecting); waiting for the connection until the call's deadline is
		// what the Python client's retries give: a server restarting, or started a moment
		// after its caller, is waited for. Give every call a deadline.
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)),
		grpc.WithDefaultServiceConfig(ServiceConfig),
		grpc.WithKeepaliveParams(Keepalive),
		grpc.WithConnectParams(reconnect),
	}

	token, err := tokenOf(opts)
	if err != nil {
		return nil, err
	}
	if token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearer(token)))
	}

	isUnix := strings.HasPrefix(target, "unix:")
	socket := strings.TrimPrefix(target, "unix:")
	tlsConfig, err := tlsOf(opts)
	switch {
	case err != nil:
		return nil, err
	case tlsConfig != nil && isUnix:
		return nil, fmt.Errorf("llmconfig: %s is a Unix socket, which is plaintext (its file mode guards it): "+
			"leave out the CA file (%s)", target, CAFileEnv)
	case tlsConfig != nil:
		dial = append(dial, grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig)))
	default:
		// grpc.WithInsecure is what both Debian's grpc-go 1.33 and today's have
		// (credentials/insecure arrived in 1.34).
		dial = append(dial, grpc.WithInsecure()) //nolint:staticcheck
	}

	if isUnix {
		// Dialled here rather than by grpc's own unix: resolver, which grpc-go gained only in
		// 1.34 (older ones send the socket path as :authority).
		if socket == "" {
			return nil, fmt.Errorf("llmconfig: target %q names no socket (unix:PATH)", target)
		}
		socket = strings.TrimPrefix(socket, "//") // unix:///run/x.sock, as gRPC writes it
		dial = append(dial, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", socket)
		}), grpc.WithAuthority("localhost"))
		target = "passthrough:///localhost"
	}
	return grpc.Dial(target, append(dial, opts.DialOptions...)...)
}

// bearer sends the token on every call. It does not require TLS: a token over a Unix socket
// or loopback is how a local server without TLS checks scopes (the server refuses tokens
// without TLS on any other listener).
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

func tokenOf(opts *Options) (string, error) {
	token, file := opts.Token, opts.TokenFile
	if token == "" && file == "" {
		token = envOr("", TokenEnv)
		if token == "" {
			file = envOr("", TokenFileEnv)
		}
	}
	if token == "" && file == "" {
		return "", nil
	}
	if token == "" {
		data, err := readLimited(file, "token file")
		if err != nil {
			return "", err
		}
		token = string(data)
	}
	token = strings.TrimSpace(token)
	printable := token != ""
	for _, r := range token {
		printable = printable && r > ' ' && r <= '~'
	}
	if !printable {
		return "", fmt.Errorf("llmconfig: the token must be one line of printable ASCII without spaces (check %s / %s)",
			TokenEnv, TokenFileEnv)
	}
	return token, nil
}

func tlsOf(opts *Options) (*tls.Config, error) {
	caFile := envOr(opts.CAFile, CAFileEnv)
	certFile := envOr(opts.CertFile, CertFileEnv)
	keyFile := envOr(opts.KeyFile, KeyFileEnv)
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("llmconfig: a client certificate needs both a cert file and a key file (%s / %s)",
			CertFileEnv, KeyFileEnv)
	}
	if caFile == "" {
		if certFile != "" {
			return nil, fmt.Errorf("llmconfig: a client certificate is only used over TLS: set a CA file (%s)", CAFileEnv)
		}
		return nil, nil
	}
	ca, err := readLimited(caFile, "CA file")
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("llmconfig: the CA file %s holds no PEM certificate", caFile)
	}
	config := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		cert, err := readLimited(certFile, "certificate file")
		if err != nil {
			return nil, err
		}
		key, err := readLimited(keyFile, "key file")
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("llmconfig: the client certificate %s and key %s do not make a pair: %v", certFile, keyFile, err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return config, nil
}

// envOr is value, else the variable's (trimmed) value.
func envOr(value, variable string) string {
	if value != "" {
		return value
	}
	return strings.TrimSpace(os.Getenv(variable))
}

func readLimited(path, what string) ([]byte, error) {
	if strings.HasPrefix(path, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			path = filepath.Join(home, path[2:])
		}
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("llmconfig: cannot read the %s %s: %v", what, path, unwrapPathError(err))
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, fileLimit+1))
	if err != nil {
		return nil, fmt.Errorf("llmconfig: cannot read the %s %s: %v", what, path, unwrapPathError(err))
	}
	if len(data) > fileLimit {
		return nil, fmt.Errorf("llmconfig: the %s %s is larger than 1 MiB", what, path)
	}
	return data, nil
}

// unwrapPathError drops the path a *PathError repeats ("open /x: no such file" → "no such file").
func unwrapPathError(err error) error {
	if pathErr, ok := err.(*os.PathError); ok {
		return pathErr.Err
	}
	return err
}
