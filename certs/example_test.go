package certs_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/xmppfed/xmppfed/certs"
)

func ExampleVerify() {
	ca, err := certs.NewTestCA()
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := ca.IssueDomain("example.org")
	if err != nil {
		fmt.Println(err)
		return
	}
	opts := certs.VerifyOptions{Roots: ca.Pool()}

	res, err := certs.Verify("Example.ORG.", []*x509.Certificate{c.Leaf}, opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Domain, "matched", res.Matched)

	_, err = certs.Verify("example.net", []*x509.Certificate{c.Leaf}, opts)
	var ie *certs.IdentityError
	fmt.Println(errors.As(err, &ie), err)
	// Output:
	// example.org matched SRV-ID "_xmpp-server.example.org"
	// true certs: certificate is not valid for "example.net"; it names DNS-ID "example.org", SRV-ID "_xmpp-server.example.org", XmppAddr "example.org"
}

func ExampleReloader() {
	dir, err := os.MkdirTemp("", "certs-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	ca, err := certs.NewTestCA()
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := ca.IssueDomain("example.org")
	if err != nil {
		fmt.Println(err)
		return
	}
	certFile, keyFile, err := certs.WritePEM(dir, "example.org", c)
	if err != nil {
		fmt.Println(err)
		return
	}

	// One Reloader per listener; renewed files are picked up within a minute.
	r := &certs.Reloader{}
	if err := r.Add(certFile, keyFile); err != nil {
		fmt.Println(err)
		return
	}
	cfg := &tls.Config{GetCertificate: r.GetCertificate}

	got, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: "example.org"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Domains(), got.Leaf.DNSNames)
	// Output: [example.org] [example.org]
}

func ExampleVerifyConnection() {
	ca, err := certs.NewTestCA()
	if err != nil {
		fmt.Println(err)
		return
	}
	receiving, err := ca.IssueDomain("receiving.example")
	if err != nil {
		fmt.Println(err)
		return
	}
	initiating, err := ca.IssueDomain("initiating.example") // serverAuth EKU only
	if err != nil {
		fmt.Println(err)
		return
	}
	opts := certs.VerifyOptions{Roots: ca.Pool()}

	// Receiving server: ask for any client certificate and check it
	// ourselves, so the missing clientAuth EKU does not matter.
	srvCfg := &tls.Config{
		Certificates:     []tls.Certificate{receiving},
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: certs.VerifyConnection("initiating.example", opts),
	}
	// Initiating server: skip crypto/tls's own check, use ours.
	cliCfg := &tls.Config{
		Certificates:       []tls.Certificate{initiating},
		InsecureSkipVerify: true,
		VerifyConnection:   certs.VerifyConnection("receiving.example", opts),
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	srvErr := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer conn.Close()
		tc := tls.Server(conn, srvCfg)
		err = tc.HandshakeContext(context.Background())
		if err == nil {
			var b [1]byte
			_, _ = tc.Read(b[:]) // until the client closes
		}
		srvErr <- err
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), cliCfg)
	if err != nil {
		fmt.Println("client:", err)
		return
	}
	conn.Close()
	fmt.Println("server handshake error:", <-srvErr)
	// Output: server handshake error: <nil>
}

func ExampleIdentities() {
	ca, err := certs.NewTestCA()
	if err != nil {
		fmt.Println(err)
		return
	}
	c, err := ca.Issue(certs.Leaf{
		DNSNames:   []string{"*.example.org"},
		SRVNames:   []string{"_xmpp-server.example.org"},
		XMPPAddrs:  []string{"example.org"},
		CommonName: "legacy.example.org",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ids, err := certs.Identities(c.Leaf)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, id := range ids {
		fmt.Println(id)
	}
	// Output:
	// DNS-ID "*.example.org"
	// SRV-ID "_xmpp-server.example.org"
	// XmppAddr "example.org"
	// CN "legacy.example.org"
}
