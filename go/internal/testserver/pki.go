package testserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// PKI is a throwaway CA and a server certificate it signed for 127.0.0.1 and localhost, as PEM
// files in a folder of the test's.
type PKI struct {
	CA, ServerCert, ServerKey string
}

// NewPKI makes one with crypto/x509: no openssl needed.
func NewPKI(t testing.TB) PKI {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	caTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "llmconfig test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	serverKey := newKey(t)
	serverTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "llmconfig"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	serverDER, err := x509.CreateCertificate(rand.Reader, serverTemplate, ca, &serverKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(serverKey)
	if err != nil {
		t.Fatal(err)
	}
	return PKI{
		CA:         writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", caDER),
		ServerCert: writePEM(t, filepath.Join(dir, "server.pem"), "CERTIFICATE", serverDER),
		ServerKey:  writePEM(t, filepath.Join(dir, "server-key.pem"), "PRIVATE KEY", keyDER),
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func writePEM(t testing.TB, path, kind string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TokensFile writes a tokens file (--tokens-file) with one token of the given scopes, and a
// file holding the token itself (what STIGMER_LLMCONFIG_TOKEN_FILE names); it returns both paths.
func TokensFile(t testing.TB, name, token string, scopes ...string) (tokensFile, tokenFile string) {
	t.Helper()
	dir := t.TempDir()
	digest := sha256.Sum256([]byte(token))
	list := strings.Join(scopes, ", ")
	tokensFile = filepath.Join(dir, "tokens.yaml")
	text := "tokens:\n  - name: " + name + "\n    sha256: " + hex.EncodeToString(digest[:]) + "\n    scopes: [" + list + "]\n"
	if err := os.WriteFile(tokensFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile = filepath.Join(dir, name+".token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return tokensFile, tokenFile
}
