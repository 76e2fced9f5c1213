package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// handshake runs one TLS handshake over loopback TCP between a server with
// srvCfg and a client with cliCfg and returns both sides' errors and the
// certificate the client saw.
func handshake(t *testing.T, srvCfg, cliCfg *tls.Config) (peer *x509.Certificate, srvErr, cliErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a hang guard, not a timing assertion
	defer cancel()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, srvCfg)
		err = tc.HandshakeContext(ctx)
		if err == nil {
			// Wait for the client's close so its handshake can finish.
			var b [1]byte
			_, _ = tc.Read(b[:])
		}
		done <- err
	}()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, cliCfg)
	cliErr = tc.HandshakeContext(ctx)
	if cliErr == nil {
		if pcs := tc.ConnectionState().PeerCertificates; len(pcs) > 0 {
			peer = pcs[0]
		}
	}
	tc.Close()
	srvErr = <-done
	return peer, srvErr, cliErr
}

// TestVerifyConnectionServerAuthOnlyClient proves the trap is avoided: an
// initiating server presents its serverAuth-only certificate as a TLS client
// certificate. Go's RequireAndVerifyClientCert refuses it; RequireAnyClientCert
// plus VerifyConnection accepts it and still checks the name.
func TestVerifyConnectionServerAuthOnlyClient(t *testing.T) {
	ca := newCA(t)
	srvCert, err := ca.IssueDomain("receiving.example")
	if err != nil {
		t.Fatal(err)
	}
	cliCert, err := ca.IssueDomain("initiating.example") // serverAuth only
	if err != nil {
		t.Fatal(err)
	}
	if eku := cliCert.Leaf.ExtKeyUsage; len(eku) != 1 || eku[0] != x509.ExtKeyUsageServerAuth {
		t.Fatalf("client cert EKU = %v, want serverAuth only", eku)
	}
	opts := VerifyOptions{Roots: ca.Pool()}
	client := func() *tls.Config {
		return &tls.Config{
			Certificates:       []tls.Certificate{cliCert},
			InsecureSkipVerify: true, // VerifyConnection below does the checking
			VerifyConnection:   VerifyConnection("receiving.example", opts),
			MinVersion:         tls.VersionTLS12,
		}
	}

	// 1. Go's default client-certificate verification: refused for the EKU.
	_, srvErr, _ := handshake(t, &tls.Config{
		Certificates: []tls.Certificate{srvCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
	}, client())
	var inv x509.CertificateInvalidError
	if !errors.As(srvErr, &inv) || inv.Reason != x509.IncompatibleUsage {
		t.Fatalf("RequireAndVerifyClientCert: server error %v, want x509 IncompatibleUsage", srvErr)
	}

	// 2. Ours: accepted.
	peer, srvErr, cliErr := handshake(t, &tls.Config{
		Certificates:     []tls.Certificate{srvCert},
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: VerifyConnection("initiating.example", opts),
	}, client())
	if srvErr != nil || cliErr != nil {
		t.Fatalf("RequireAnyClientCert + VerifyConnection: server %v, client %v", srvErr, cliErr)
	}
	if peer == nil || !peer.Equal(srvCert.Leaf) {
		t.Errorf("client saw %v, want the server certificate", peer)
	}

	// 3. Ours still checks the name: the wrong domain fails the handshake.
	_, srvErr, _ = handshake(t, &tls.Config{
		Certificates:     []tls.Certificate{srvCert},
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: VerifyConnection("someone-else.example", opts),
	}, client())
	var ie *IdentityError
	if !errors.As(srvErr, &ie) || ie.Domain != "someone-else.example" {
		t.Errorf("wrong domain: server error %v, want *IdentityError", srvErr)
	}

	// 4. The client side checks the server's name the same way.
	cli := client()
	cli.VerifyConnection = VerifyConnection("not-receiving.example", opts)
	_, _, cliErr = handshake(t, &tls.Config{
		Certificates: []tls.Certificate{srvCert},
		ClientAuth:   tls.RequireAnyClientCert,
	}, cli)
	if !errors.As(cliErr, &ie) {
		t.Errorf("client, wrong server name: %v, want *IdentityError", cliErr)
	}
}

func TestVerifyConnectionNoCertificate(t *testing.T) {
	err := VerifyConnection("example.org", VerifyOptions{})(tls.ConnectionState{})
	if !errors.Is(err, ErrNoCertificate) || !strings.Contains(err.Error(), "no certificate") {
		t.Errorf("err = %v, want ErrNoCertificate", err)
	}
}
