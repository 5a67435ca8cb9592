package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority made for one test, so that a server can
// require client certificates without any key material kept in the
// repository.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

// NewCA makes a CA whose certificates last as long as a test needs.
func NewCA(tb testing.TB) *CA {
	tb.Helper()
	key := newKey(tb)
	tmpl := template(tb, "turnstile test CA")
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{cert: cert, key: key, pool: pool}
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

func template(tb testing.TB, commonName string) *x509.Certificate {
	tb.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		tb.Fatal(err)
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    time.Now().Add(-time.Hour), // a clock a little behind still accepts it
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
}

// Certificate issues a certificate for commonName, valid for the loopback
// address, for a server or a client alike: etcd's own gateway presents
// the server's certificate as a client. A cluster with authentication
// enabled takes a client certificate's common name as its user name.
func (ca *CA) Certificate(tb testing.TB, commonName string) tls.Certificate {
	tb.Helper()
	key := newKey(tb)
	tmpl := template(tb, commonName)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	tmpl.DNSNames = []string{"localhost"}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// ClientTLS returns a client configuration that trusts the CA and
// presents a certificate for commonName, or no certificate if
// commonName is empty.
func (ca *CA) ClientTLS(tb testing.TB, commonName string) *tls.Config {
	tb.Helper()
	cfg := &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12}
	if commonName != "" {
		cfg.Certificates = []tls.Certificate{ca.Certificate(tb, commonName)}
	}
	return cfg
}

// Serve returns an option for StartServer: the member serves clients
// over TLS only, and admits only clients that present a certificate from
// the CA. etcd reads its certificates from files, which live in the
// test's temporary directory.
func (ca *CA) Serve(tb testing.TB) ServerOption {
	tb.Helper()
	dir := tb.TempDir()
	cert := ca.Certificate(tb, "etcd server")
	keyDER, err := x509.MarshalECPrivateKey(cert.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		tb.Fatal(err)
	}
	files := map[string]*pem.Block{
		"server.crt": {Type: "CERTIFICATE", Bytes: cert.Certificate[0]},
		"server.key": {Type: "EC PRIVATE KEY", Bytes: keyDER},
		"ca.crt":     {Type: "CERTIFICATE", Bytes: ca.cert.Raw},
	}
	for name, block := range files {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return func(cfg *serverConfig) {
		cfg.tls = true
		cfg.flags = append(cfg.flags,
			"--cert-file", filepath.Join(dir, "server.crt"),
			"--key-file", filepath.Join(dir, "server.key"),
			"--trusted-ca-file", filepath.Join(dir, "ca.crt"),
			"--client-cert-auth")
	}
}
