package s2s_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
	"github.com/xmppfed/xmppfed/s2s"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hang bounds every wait of these tests: it is a guard against a hang,
// never a timing assertion.
const hang = 15 * time.Second

// harness is one test CA and one loopback DNS server shared by the nodes
// of a test.
type harness struct {
	t   testing.TB
	ca  *certs.TestCA
	dns *dnsdiscotest.Server
}

func newHarness(t testing.TB) *harness {
	ca, err := certs.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	d := dnsdiscotest.NewServer()
	t.Cleanup(d.Close)
	return &harness{t: t, ca: ca, dns: d}
}

type bounced struct {
	st  *s2s.Stanza
	err stanza.Error
}

// node is one s2s.Server serving one or more domains on loopback.
type node struct {
	srv     *s2s.Server
	domain  string
	addr    string
	got     chan *s2s.Stanza
	bounced chan bounced
}

type nodeOpt struct {
	domains   []string // extra domains
	set       s2s.Settings
	cert      *tls.Certificate // nil: issued by the harness CA for the domains
	directTLS bool
	handler   s2s.Handler
	mod       func(*s2s.Server)
}

// node starts a Server for domain with SRV records pointing at its
// listener.
func (h *harness) node(domain string, o nodeOpt) *node {
	t := h.t
	domains := append([]string{domain}, o.domains...)
	n := &node{domain: domain, got: make(chan *s2s.Stanza, 100), bounced: make(chan bounced, 100)}
	cert := o.cert
	if cert == nil {
		c, err := h.ca.IssueDomain(domains...)
		if err != nil {
			t.Fatal(err)
		}
		cert = &c
	}
	set := o.set
	n.srv = &s2s.Server{
		Domains:   domains,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{*cert}},
		Verify:    certs.VerifyOptions{Roots: h.ca.Pool()},
		Resolver:  h.dns.Resolver(),
		Settings:  func(context.Context, string) (s2s.Settings, error) { return set, nil },
		Handler: s2s.HandlerFunc(func(_ context.Context, st *s2s.Stanza) error {
			n.got <- st
			return nil
		}),
		Bounce: func(_ context.Context, st *s2s.Stanza, err stanza.Error) { n.bounced <- bounced{st, err} },
	}
	if o.handler != nil {
		n.srv.Handler = o.handler
	}
	if o.mod != nil {
		o.mod(n.srv)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.addr = l.Addr().String()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	service := "_xmpp-server._tcp"
	serve := n.srv.Serve
	if o.directTLS {
		service, serve = "_xmpps-server._tcp", n.srv.ServeDirectTLS
	}
	for _, d := range domains {
		h.dns.AddSRV(service, d, "xmpp."+domain, port, 0, 0)
	}
	h.dns.AddHost("xmpp."+domain, netip.MustParseAddr("127.0.0.1"))
	done := make(chan error, 1)
	go func() { done <- serve(l) }()
	t.Cleanup(func() {
		_ = n.srv.Close()
		if err := <-done; !errors.Is(err, s2s.ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return n
}

func msg(t testing.TB, from, to, body string) *s2s.Stanza {
	t.Helper()
	st, err := s2s.ParseStanza([]byte(fmt.Sprintf("<message xmlns='jabber:server' from='%s' to='%s' type='chat' id='m1'><body>%s</body></message>", from, to, body)))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func recv[T any](t testing.TB, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(hang):
		t.Fatalf("no %s within %v", what, hang)
	}
	var zero T
	return zero
}

func TestDeliverReplyAndStats(t *testing.T) {
	h := newHarness(t)
	a := h.node("a.example", nodeOpt{})
	h.node("b.example", nodeOpt{handler: s2s.HandlerFunc(func(_ context.Context, st *s2s.Stanza) error {
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
	})})
	ctx := context.Background()
	if err := a.srv.Send(ctx, msg(t, "alice@a.example/r", "bob@b.example", "hello")); err != nil {
		t.Fatal(err)
	}
	// b's handler refuses: the error reply comes back to a's handler.
	reply := recv(t, a.got, "error reply")
	if reply.Type != "error" || reply.From.String() != "bob@b.example" || reply.To.String() != "alice@a.example/r" ||
		!strings.Contains(string(reply.Raw()), "item-not-found") || !strings.Contains(string(reply.Raw()), "<body>hello</body>") {
		t.Errorf("reply = %s", reply.Raw())
	}
	stats := a.srv.Stats()
	var out *s2s.StreamInfo
	for i, si := range stats.Streams {
		if si.Direction == s2s.Outbound && si.Remote == "b.example" {
			out = &stats.Streams[i]
		}
	}
	if out == nil {
		t.Fatalf("no outbound stream in %+v", stats)
	}
	if out.Auth != s2s.AuthSASLExternal || out.TLSVersion != "TLS 1.3" || out.Local != "a.example" ||
		out.StanzasOut != 1 || len(out.SendPairs) != 1 || out.SendPairs[0] != "a.example->b.example" || out.Identity == "" {
		t.Errorf("outbound stream info = %+v", *out)
	}
}

// allSettings lists every combination of the three knobs: TLS and SASL
// (Required, Optional, NotSupported) and dialback (on, off): 18 values.
func allSettings() []s2s.Settings {
	var out []s2s.Settings
	for _, tl := range []s2s.Negotiation{s2s.Required, s2s.Optional, s2s.NotSupported} {
		for _, sa := range []s2s.Negotiation{s2s.Required, s2s.Optional, s2s.NotSupported} {
			for _, off := range []bool{false, true} {
				out = append(out, s2s.Settings{TLS: tl, SASL: sa, DisableDialback: off})
			}
		}
	}
	return out
}

func settingsName(s s2s.Settings) string {
	db := "db"
	if s.DisableDialback {
		db = "nodb"
	}
	return "tls-" + s.TLS.String() + "_sasl-" + s.SASL.String() + "_" + db
}

// expectedOutcome computes, from the initiator's and the receiver's
// settings alone (both with valid certificates), whether a stream can be
// authenticated and how: SASL EXTERNAL over TLS is preferred, then
// dialback (over TLS when negotiated, over plain TCP only when neither
// side requires TLS). Settings that Validate rejects refuse the peer.
func expectedOutcome(in, re s2s.Settings) (ok bool, m s2s.AuthMethod) {
	if _, err := in.Validate(); err != nil {
		return false, s2s.AuthNone
	}
	if _, err := re.Validate(); err != nil {
		return false, s2s.AuthNone
	}
	useTLS := in.TLS != s2s.NotSupported && re.TLS != s2s.NotSupported
	if !useTLS && (in.TLS == s2s.Required || re.TLS == s2s.Required) {
		return false, s2s.AuthNone
	}
	if useTLS && in.SASL != s2s.NotSupported && re.SASL != s2s.NotSupported {
		return true, s2s.AuthSASLExternal
	}
	if in.SASL == s2s.Required || re.SASL == s2s.Required {
		return false, s2s.AuthNone
	}
	if in.Dialback() && re.Dialback() {
		return true, s2s.AuthDialback
	}
	return false, s2s.AuthNone
}

// TestSettingsMatrix runs every initiator x receiver combination of the
// settings knobs (18 x 18) over loopback with real TLS and DNS and checks
// the outcome against expectedOutcome: the stanza is delivered with the
// expected method, or bounced and never delivered.
func TestSettingsMatrix(t *testing.T) {
	h := newHarness(t)
	sets := allSettings()
	for i, in := range sets {
		for j, re := range sets {
			t.Run(settingsName(in)+"/"+settingsName(re), func(t *testing.T) {
				t.Parallel()
				ok, method := expectedOutcome(in, re)
				a := h.node(fmt.Sprintf("i%d-%d.example", i, j), nodeOpt{set: in})
				b := h.node(fmt.Sprintf("r%d-%d.example", i, j), nodeOpt{set: re})
				err := a.srv.Send(context.Background(), msg(t, "u@"+a.domain, "v@"+b.domain, "x"))
				if _, verr := in.Validate(); verr != nil {
					// The initiator's own Settings refuse the peer: Send says so.
					if err == nil {
						t.Fatalf("Send with invalid settings succeeded")
					}
					return
				}
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				select {
				case got := <-b.got:
					if !ok {
						t.Fatalf("delivered, want failure")
					}
					if got.From.String() != "u@"+a.domain {
						t.Errorf("from = %s", got.From)
					}
					var m s2s.AuthMethod
					for _, si := range a.srv.Stats().Streams {
						if si.Direction == s2s.Outbound && si.Remote == b.domain {
							m = si.Auth
						}
					}
					if m != method {
						t.Errorf("authenticated with %v, want %v", m, method)
					}
				case bo := <-a.bounced:
					if ok {
						t.Fatalf("bounced (%v: %s), want delivery with %v", bo.err.Condition, bo.err.Text[""], method)
					}
					if bo.err.Condition != stanza.RemoteServerTimeout && bo.err.Condition != stanza.RemoteServerNotFound {
						t.Errorf("bounce condition %v", bo.err.Condition)
					}
				case <-time.After(hang):
					t.Fatalf("neither delivered nor bounced within %v", hang)
				}
			})
		}
	}
}
