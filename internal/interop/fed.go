//go:build interop

package interop

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/federation/federationtest"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

// The host's users in the scenarios, all at OurDomain.
const (
	// HostUser and HostUser2 are ordinary users with XMPP access.
	HostUser  = "ann"
	HostUser2 = "ben"
	// NoAccessUser exists but its per-user policy turns XMPP access off.
	NoAccessUser = "noxmpp"
	// noAccessPolicy is the per-user access policy of NoAccessUser.
	noAccessPolicy = "no-xmpp"
)

// FedConfig says how StartFed sets up our federation.Server.
type FedConfig struct {
	// Peer is the remote domain listed as the one partner; empty lists
	// no partner at all (open federation is off either way).
	Peer string
	// Type is the partner's type (PublicUnverified: the host approves
	// subscriptions and messages explicitly).
	Type policy.PartnerType
	// Settings are the partner's stream negotiation settings.
	Settings policy.Settings
}

// Fed is a federation.Server for OurDomain on OurAddr with a recording
// federationtest.Backend as the host, and the policy it was given.
type Fed struct {
	Server  *federation.Server
	Backend *federationtest.Backend
	Policy  *policy.Policy
	// Log holds the server's slog output and XML its raw XML.
	Log, XML *syncBuffer

	served   chan error
	stopOnce sync.Once
}

// HostJID returns local@OurDomain.
func HostJID(local string) jid.JID { return jid.MustParse(local + "@" + OurDomain) }

// StartFed starts our federation.Server for OurDomain on OurAddr with the
// policy cfg describes, a Backend holding HostUser, HostUser2 (available)
// and NoAccessUser (per-user policy without XMPP access), and stops it
// (bounded) when t ends, or earlier with Stop.
func StartFed(t testing.TB, pki *PKI, cfg FedConfig) *Fed {
	t.Helper()
	f := &Fed{Backend: new(federationtest.Backend), Log: new(syncBuffer), XML: new(syncBuffer), served: make(chan error, 1)}
	for _, u := range []string{HostUser, HostUser2} {
		f.Backend.AddUser(HostJID(u), policy.User{})
		f.Backend.SetPresence(HostJID(u), translate.Presence{Availability: translate.Available})
	}
	f.Backend.AddUser(HostJID(NoAccessUser), policy.User{Policy: noAccessPolicy})
	conf := &policy.Config{
		Policies: []policy.AccessPolicy{
			{Name: policy.GlobalPolicy, EnableXMPPAccess: true, EnableFederationAccess: true},
			{Name: noAccessPolicy, EnableXMPPAccess: false, EnableFederationAccess: true},
		},
	}
	if cfg.Peer != "" {
		conf.Partners = []policy.Partner{{Domain: cfg.Peer, Type: cfg.Type, Settings: cfg.Settings}}
	}
	pol, err := policy.New(context.Background(), policy.NewMemStore(conf), &policy.Options{Directory: f.Backend})
	if err != nil {
		t.Fatalf("interop: policy for %+v: %v", cfg, err)
	}
	f.Policy = pol
	f.Server = &federation.Server{
		Domains:     []string{OurDomain},
		TLSConfig:   &tls.Config{Certificates: []tls.Certificate{pki.Leaf(t, OurDomain)}},
		Verify:      certs.VerifyOptions{Roots: pki.RootCAs()},
		Resolver:    &dnsdisco.Resolver{Servers: []string{DNSAddr}},
		Policy:      pol,
		Backend:     f.Backend,
		Logger:      slog.New(slog.NewTextHandler(f.Log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		DebugWriter: f.XML,
	}
	// The previous Fed's listener may take a moment to go away.
	var l net.Listener
	for range 50 {
		if l, err = net.Listen("tcp", OurAddr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("interop: listen %s: %v", OurAddr, err)
	}
	go func() { f.served <- f.Server.Serve(l) }()
	t.Cleanup(func() { f.Stop(t) })
	return f
}

// Stop shuts the server down gracefully (Shutdown bounded to 15 s, run
// aside so a Shutdown that ignores its context fails instead of hanging)
// and waits for Serve to return. Later calls do nothing.
func (f *Fed) Stop(t testing.TB) {
	f.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		shut := make(chan error, 1)
		go func() { shut <- f.Server.Shutdown(ctx) }()
		select {
		case err := <-shut:
			if err != nil {
				t.Errorf("interop: federation Shutdown: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("interop: federation.Server.Shutdown still running 5 s past its context's deadline (leaking it)")
			return
		}
		select {
		case err := <-f.served:
			if !errors.Is(err, federation.ErrServerClosed) {
				t.Errorf("interop: federation Serve returned %v, want ErrServerClosed", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("interop: federation Serve did not return after Shutdown")
		}
	})
}

// Diag is the server's log and raw XML, for failure messages (the last
// 64 KiB of each).
func (f *Fed) Diag() string {
	last := func(s string) string {
		if len(s) > 64<<10 {
			return "..." + s[len(s)-64<<10:]
		}
		return s
	}
	return "our log:\n" + last(f.Log.String()) + "\nour XML:\n" + last(f.XML.String())
}
