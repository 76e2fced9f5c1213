package s2s

import (
	"context"
	"testing"

	"github.com/xmppfed/xmppfed/internal/clock"
	"github.com/xmppfed/xmppfed/policy"
)

// SetClock makes s run its timers on c; call it before first use.
func SetClock(s *Server, c clock.Clock) { s.clock = c }

// PoolState reports how many (local, remote) pairs the pool holds and how
// many of them have an attempt running.
func PoolState(s *Server) (pairs, dialing int) {
	ops := s.pairSnapshot()
	for _, op := range ops {
		op.mu.Lock()
		if op.dialing {
			dialing++
		}
		op.mu.Unlock()
	}
	return len(ops), dialing
}

// NewPolicy returns a Policy over a MemStore for tests: open federation
// with set as the DefaultPartner's settings, and XMPP access for every
// local user (the global policy); edit, if not nil, changes that
// configuration first (partners, gateway, blocked domains, access).
func NewPolicy(t testing.TB, set policy.Settings, edit func(*policy.Config)) *policy.Policy {
	t.Helper()
	c := &policy.Config{
		Gateway: policy.Gateway{OpenFederation: true, DefaultPartner: policy.Partner{Settings: set}},
		Policies: []policy.AccessPolicy{
			{Name: policy.GlobalPolicy, EnableXMPPAccess: true, EnableFederationAccess: true},
		},
	}
	if edit != nil {
		edit(c)
	}
	p, err := policy.New(context.Background(), policy.NewMemStore(c), nil)
	if err != nil {
		t.Fatalf("policy.New: %v", err)
	}
	return p
}

// CommonSettings returns the settings most tests use: TLS required, SASL
// EXTERNAL when possible, else dialback over TLS (row 7 of the matrix).
func CommonSettings() policy.Settings { return policy.Settings{SASL: policy.Optional} }

// DialbackKey is the XEP-0185 key the Authoritative Server with secret
// expects for (receiving, originating, streamID): tests play an
// Initiating Server that knows the secret, or replay a key.
func DialbackKey(secret []byte, receiving, originating, streamID string) string {
	return dialbackKey(secret, receiving, originating, streamID)
}

// ResentDropped reports how many XEP-0198 resends of stanzas already
// handled s dropped (dedupe.go).
func ResentDropped(s *Server) uint64 { return s.dedupe.drops.Load() }

// SMEnabled reports whether an established outbound stream of s to remote
// has XEP-0198 enabled (the peer answered our <enable/>).
func SMEnabled(s *Server, remote string) bool {
	r := &s.run
	r.mu.Lock()
	defer r.mu.Unlock()
	for st := range r.streams {
		if st.dir == Outbound && st.remote == remote && st.rt != nil {
			st.rt.mu.Lock()
			on := st.rt.smEnabled
			st.rt.mu.Unlock()
			if on {
				return true
			}
		}
	}
	return false
}
