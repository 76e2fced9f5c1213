package s2s_test

import (
	"context"
	"crypto/sha256"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
)

// TestDNSSECVerification: what DNSSEC-authenticated DNS adds to the check
// of a receiving server's certificate on outbound streams (XEP-0344 §2.1,
// RFC 7673). a requires SASL EXTERNAL, so the stream stands or falls with
// the verification of b's certificate.
func TestDNSSECVerification(t *testing.T) {
	for _, tc := range []struct {
		name   string
		leaf   certs.Leaf // b's certificate
		pkix   bool       // issued by the harness CA (else self-signed)
		secure bool       // the zone answers with the AD bit
		tlsa   bool       // a DANE-EE record for b's key is published
		ok     bool
		ident  string // the identity Stats should name on success
	}{
		// A self-signed certificate is trusted only through DANE, and DANE
		// only through DNSSEC.
		{"dane-ee", certs.Leaf{DNSNames: []string{"b.example"}}, false, true, true, true, "DANE-EE"},
		{"tlsa-without-dnssec", certs.Leaf{DNSNames: []string{"b.example"}}, false, false, true, false, ""},
		{"dnssec-without-tlsa", certs.Leaf{DNSNames: []string{"b.example"}}, false, true, false, false, ""},
		// A CA certificate naming only the SRV target is accepted when the
		// SRV answer is DNSSEC-authenticated, never otherwise.
		{"secure-srv-target-name", certs.Leaf{DNSNames: []string{"xmpp.b.example"}}, true, true, false, true, `DNS-ID "xmpp.b.example"`},
		{"srv-target-name-without-dnssec", certs.Leaf{DNSNames: []string{"xmpp.b.example"}}, true, false, false, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			leaf := tc.leaf
			leaf.SelfSigned = !tc.pkix
			cert, err := h.ca.Issue(leaf)
			if err != nil {
				t.Fatal(err)
			}
			b := h.node("b.example", nodeOpt{cert: &cert})
			a := h.node("a.example", nodeOpt{set: &policy.Settings{SASL: policy.Required}})
			if tc.tlsa {
				_, port, _ := net.SplitHostPort(b.addr)
				p, err := strconv.ParseUint(port, 10, 16)
				if err != nil {
					t.Fatal(err)
				}
				spki := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
				h.dns.AddTLSA("xmpp.b.example", uint16(p), 3, 1, 1, spki[:])
			}
			h.dns.SetSecure("b.example", tc.secure)

			if err := a.srv.Send(context.Background(), msg(t, "u@a.example", "v@b.example", "hi")); err != nil {
				t.Fatal(err)
			}
			if !tc.ok {
				bo := recv(t, a.bounced, "bounce")
				if !strings.Contains(bo.err.Text[""], "certificate") {
					t.Errorf("bounce text %q does not say the certificate was the problem", bo.err.Text[""])
				}
				return
			}
			got := recv(t, b.got, "delivery")
			if got.From.String() != "u@a.example" {
				t.Fatalf("delivered %s", got.Raw())
			}
			for _, si := range a.srv.Stats().Streams {
				if si.Direction == s2s.Outbound && si.Remote == "b.example" {
					if si.Auth != s2s.AuthSASLExternal || !strings.HasPrefix(si.Identity, tc.ident) {
						t.Errorf("stream auth %v identity %q, want sasl-external and %s", si.Auth, si.Identity, tc.ident)
					}
					return
				}
			}
			t.Errorf("no outbound stream in %+v", a.srv.Stats())
		})
	}
}
