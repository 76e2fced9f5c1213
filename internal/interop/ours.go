//go:build interop

package interop

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
)

// OurDomain and OurAddr are where the s2s.Server under test serves.
const (
	OurDomain = "xmppfed.test"
	OurAddr   = "127.0.0.4:5269"
	// NoSuchUser is the localpart our Handler answers with the stanza
	// error item-not-found.
	NoSuchUser = "nobody"
)

// syncBuffer is a bytes.Buffer safe for concurrent writers, capped so a
// chatty peer cannot exhaust memory.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const syncBufferCap = 1 << 20

// Write appends p up to syncBufferCap bytes in all; it never fails.
func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := syncBufferCap - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// String returns what was written so far.
func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Ours is an s2s.Server for OurDomain serving OurAddr (STARTTLS style), with
// a Handler and Bounce that record what they get.
type Ours struct {
	Server *s2s.Server // serving OurDomain
	// Log holds the server's slog output and its raw XML (DebugWriter).
	Log, XML *syncBuffer

	in      chan *s2s.Stanza
	bounces chan string
	served  []chan error // one per listener
	dropped atomic.Int64 // stanzas the Handler could not record (in full)
}

// SettingsFor returns the settings our server uses toward a peer in mode:
// SASL EXTERNAL required (XEP-0178) in External mode; no SASL, so dialback
// (XEP-0220) over required TLS, in Dialback mode.
func SettingsFor(mode Mode) policy.Settings {
	if mode == Dialback {
		return policy.Settings{TLS: policy.Required, SASL: policy.NotSupported}
	}
	return policy.Settings{TLS: policy.Required, SASL: policy.Required}
}

// PolicyFor returns the policy of our server in a test with peerDomain in
// mode: the peer is the one federation partner (Federated, with
// SettingsFor(mode)); open federation is off, so any other remote domain is
// refused; every local user may use XMPP.
func PolicyFor(peerDomain string, mode Mode) (*policy.Policy, error) {
	return policy.New(context.Background(), policy.NewMemStore(&policy.Config{
		Partners: []policy.Partner{{Domain: peerDomain, Type: policy.Federated, Settings: SettingsFor(mode)}},
		Policies: []policy.AccessPolicy{{Name: policy.GlobalPolicy, EnableXMPPAccess: true, EnableFederationAccess: true}},
	}), nil)
}

// StartOurs starts our server federating with peerDomain in mode and shuts
// it down (bounded) when t ends. Any other remote domain is refused.
func StartOurs(t testing.TB, pki *PKI, peerDomain string, mode Mode) *Ours {
	t.Helper()
	o := &Ours{Log: new(syncBuffer), XML: new(syncBuffer), in: make(chan *s2s.Stanza, 4096), bounces: make(chan string, 64)}
	pol, err := PolicyFor(peerDomain, mode)
	if err != nil {
		t.Fatalf("interop: policy: %v", err)
	}
	o.Server = &s2s.Server{
		Domains:   []string{OurDomain},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pki.Leaf(t, OurDomain)}},
		Verify:    certs.VerifyOptions{Roots: pki.RootCAs()},
		Resolver:  &dnsdisco.Resolver{Servers: []string{DNSAddr}},
		Policy:    pol,
		Handler: s2s.HandlerFunc(func(_ context.Context, st *s2s.Stanza) error {
			if st.To.Localpart() == NoSuchUser {
				// The library turns this into the RFC 6120 §8.3 error reply.
				return stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
			}
			select {
			case o.in <- st:
			default:
				o.dropped.Add(1)
			}
			return nil
		}),
		Bounce: func(_ context.Context, st *s2s.Stanza, e stanza.Error) {
			select {
			case o.bounces <- fmt.Sprintf("%s %s->%s: %v", st.Kind, st.From, st.To, e):
			default:
			}
		},
		Logger:      slog.New(slog.NewTextHandler(o.Log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		DebugWriter: o.XML,
	}
	l, err := net.Listen("tcp", OurAddr)
	if err != nil {
		t.Fatalf("interop: listen %s: %v", OurAddr, err)
	}
	served := make(chan error, 1)
	o.served = append(o.served, served)
	go func() { served <- o.Server.Serve(l) }()
	t.Cleanup(func() { o.stop(t) })
	return o
}

// stop shuts the server down gracefully, bounded: Shutdown gets 15 s (its
// context), and is itself run aside so that a Shutdown that ignores its
// context fails the test instead of hanging it.
func (o *Ours) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- o.Server.Shutdown(ctx) }()
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("interop: Shutdown: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("interop: s2s.Server.Shutdown still running 5 s past its context's deadline (leaking it)")
		return
	}
	for _, served := range o.served {
		select {
		case err := <-served:
			if !errors.Is(err, s2s.ErrServerClosed) {
				t.Errorf("interop: Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("interop: Serve did not return after Shutdown")
		}
	}
}

// ServeDirectTLS adds an XEP-0368 direct TLS listener on addr; the
// server's shutdown (registered by StartOurs) closes it.
func (o *Ours) ServeDirectTLS(t testing.TB, addr string) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("interop: listen %s: %v", addr, err)
	}
	served := make(chan error, 1)
	o.served = append(o.served, served)
	go func() { served <- o.Server.ServeDirectTLS(l) }()
}

// SendMessage sends a chat message with body from from (one of ours) to to
// through our server. All values are XML-escaped.
func (o *Ours) SendMessage(ctx context.Context, from, to, body string) error {
	esc := func(s string) string {
		var b strings.Builder
		_ = xml.EscapeText(&b, []byte(s))
		return b.String()
	}
	raw := fmt.Sprintf(`<message xmlns='jabber:server' from='%s' to='%s' type='chat' id='interop-%s'><body>%s</body></message>`,
		esc(from), esc(to), esc(body), esc(body))
	st, err := s2s.ParseStanza([]byte(raw))
	if err != nil {
		return err
	}
	return o.Server.Send(ctx, st)
}

// Wait returns the first inbound stanza whose raw XML contains
// <body>body</body>, or an error after timeout (naming any bounce seen).
func (o *Ours) Wait(body string, timeout time.Duration) (*s2s.Stanza, error) {
	want := "<body>" + body + "</body>"
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var bounced []string
	for {
		select {
		case st := <-o.in:
			if strings.Contains(string(st.Raw()), want) {
				return st, nil
			}
		case b := <-o.bounces:
			bounced = append(bounced, b)
		case <-deadline.C:
			return nil, fmt.Errorf("interop: %s: no stanza with %s within %v (bounces: %q)", OurDomain, want, timeout, bounced)
		}
	}
}

// WaitAll waits until an inbound stanza with <body>b</body> has arrived for
// every b in bodies, and returns the bodies still missing after timeout.
func (o *Ours) WaitAll(bodies []string, timeout time.Duration) []string {
	missing := make(map[string]bool, len(bodies))
	for _, b := range bodies {
		missing["<body>"+b+"</body>"] = true
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(missing) > 0 {
		select {
		case st := <-o.in:
			raw := string(st.Raw())
			if i := strings.Index(raw, "<body>"); i >= 0 {
				if j := strings.Index(raw[i:], "</body>"); j >= 0 {
					delete(missing, raw[i:i+j+len("</body>")])
				}
			}
		case <-deadline.C:
			var out []string
			for _, b := range bodies {
				if missing["<body>"+b+"</body>"] {
					out = append(out, b)
				}
			}
			return out
		}
	}
	return nil
}

// Dropped is how many inbound stanzas the recording Handler had no room
// for (a harness limit, not a server fault).
func (o *Ours) Dropped() int64 { return o.dropped.Load() }

// Bounces returns the bounces recorded so far without waiting.
func (o *Ours) Bounces() []string {
	var out []string
	for range cap(o.bounces) {
		select {
		case b := <-o.bounces:
			out = append(out, b)
		default:
			return out
		}
	}
	return out
}

// Diag is everything useful when a test fails.
func (o *Ours) Diag() string {
	return "our log:\n" + o.Log.String() + "\nour XML:\n" + o.XML.String()
}
