package federationtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

// conformanceDomain is the remote domain of the contacts TestBackend
// stores in the roster under test.
const conformanceDomain = "conformance.example"

// TestBackend runs the conformance suite of federation.Backend against a
// host's implementation, the way nettest.TestConn does for net.Conn.
// newBackend returns a fresh Backend for each subtest and one of its local
// users (bare JID) that exists; the suite stores roster entries for that
// user with contacts at conformance.example and asks about users it makes
// up (a random localpart at the user's domain), which must not exist.
//
// It checks that an unknown user is reported as the interfaces say
// (policy.ErrUnknownUser from LookupUser, a delivery error that becomes
// service-unavailable, RFC 6121 §8.5.2.1), that the known user is found
// and has a current presence, that the roster keeps each of RFC 6121's
// nine states with Watchers and Contacts consistent with them, that
// concurrent calls are safe (run it with -race), and that Bounce returns.
func TestBackend(t *testing.T, newBackend func(t *testing.T) (federation.Backend, jid.JID)) {
	t.Run("UnknownUser", func(t *testing.T) { testUnknownUser(t, newBackend) })
	t.Run("KnownUser", func(t *testing.T) { testKnownUser(t, newBackend) })
	t.Run("RosterStates", func(t *testing.T) { testRosterStates(t, newBackend) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newBackend) })
	t.Run("Bounce", func(t *testing.T) { testBounce(t, newBackend) })
}

// randomJID returns local-<random>@domain.
func randomJID(t *testing.T, local, domain string) jid.JID {
	t.Helper()
	j, err := jid.New(local+"-"+strings.ToLower(rand.Text()), domain, "")
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func testUnknownUser(t *testing.T, newBackend func(t *testing.T) (federation.Backend, jid.JID)) {
	b, user := newBackend(t)
	ctx := t.Context()
	nobody := randomJID(t, "nobody", user.Domainpart())
	from := randomJID(t, "sender", conformanceDomain)
	if _, err := b.LookupUser(ctx, nobody); !errors.Is(err, policy.ErrUnknownUser) {
		t.Errorf("LookupUser(%s) = %v, want an error that is policy.ErrUnknownUser", nobody, err)
	}
	err := b.DeliverMessage(ctx, &translate.Message{From: from, To: nobody, Type: translate.Chat, Body: "hello"})
	if err == nil {
		t.Errorf("DeliverMessage to %s: no error, want translate.ErrUnknownUser", nobody)
	} else if c := translate.StanzaError(err).Condition; c != stanza.ServiceUnavailable {
		t.Errorf("DeliverMessage to %s: %v becomes %s, want service-unavailable (translate.ErrUnknownUser)", nobody, err, c)
	}
	if p, err := b.CurrentPresence(ctx, nobody); err == nil {
		t.Errorf("CurrentPresence(%s) = %+v, want an error", nobody, p)
	}
}

func testKnownUser(t *testing.T, newBackend func(t *testing.T) (federation.Backend, jid.JID)) {
	b, user := newBackend(t)
	ctx := t.Context()
	if _, err := b.LookupUser(ctx, user); err != nil {
		t.Errorf("LookupUser(%s): %v", user, err)
	}
	p, err := b.CurrentPresence(ctx, user)
	if err != nil || p == nil {
		t.Fatalf("CurrentPresence(%s) = %v, %v; want a presence", user, p, err)
	}
	if p.Availability > translate.Offline {
		t.Errorf("CurrentPresence(%s).Availability = %v, not a defined value", user, p.Availability)
	}
}

// allStates returns RFC 6121 Appendix A.1's nine states.
func allStates() []translate.SubState {
	return []translate.SubState{
		translate.None, translate.NonePendingOut, translate.NonePendingIn, translate.NonePendingOutIn,
		translate.To, translate.ToPendingIn, translate.From, translate.FromPendingOut, translate.Both,
	}
}

// checkPair checks that the roster holds s for (local, remote) and that
// Watchers and Contacts agree with it.
func checkPair(ctx context.Context, r translate.Roster, local, remote jid.JID, s translate.SubState) error {
	got, err := r.State(ctx, local, remote)
	if err != nil {
		return fmt.Errorf("State(%s, %s): %v", local, remote, err)
	}
	if got != s {
		return fmt.Errorf("State(%s, %s) = %v after SetState %v", local, remote, got, s)
	}
	watchers, err := r.Watchers(ctx, local)
	if err != nil {
		return fmt.Errorf("Watchers(%s): %v", local, err)
	}
	watching := slices.ContainsFunc(watchers, func(j jid.JID) bool { return j.Bare().Equal(remote.Bare()) })
	if watching != s.ContactSees() {
		return fmt.Errorf("in state %v, Watchers(%s) = %v: contains %s is %v, want %v", s, local, watchers, remote, watching, s.ContactSees())
	}
	contacts, err := r.Contacts(ctx, remote.Domainpart())
	if err != nil {
		return fmt.Errorf("Contacts(%s): %v", remote.Domainpart(), err)
	}
	seen := slices.ContainsFunc(contacts, func(p [2]jid.JID) bool {
		return p[0].Bare().Equal(local.Bare()) && p[1].Bare().Equal(remote.Bare())
	})
	if seen != s.SeesContact() {
		return fmt.Errorf("in state %v, Contacts(%s) = %v: contains (%s, %s) is %v, want %v", s, remote.Domainpart(), contacts, local, remote, seen, s.SeesContact())
	}
	return nil
}

func testRosterStates(t *testing.T, newBackend func(t *testing.T) (federation.Backend, jid.JID)) {
	b, user := newBackend(t)
	ctx := t.Context()
	remote := randomJID(t, "contact", conformanceDomain)
	if err := checkPair(ctx, b, user, remote, translate.None); err != nil {
		t.Errorf("a new pair: %v", err)
	}
	// Every state, then back to None, which removes the pair.
	for _, s := range append(allStates()[1:], translate.None) {
		if err := b.SetState(ctx, user, remote, s); err != nil {
			t.Fatalf("SetState(%s, %s, %v): %v", user, remote, s, err)
		}
		if err := checkPair(ctx, b, user, remote, s); err != nil {
			t.Error(err)
		}
	}
}

func testConcurrent(t *testing.T, newBackend func(t *testing.T) (federation.Backend, jid.JID)) {
	b, user := newBackend(t)
	ctx := t.Context()
	const workers, rounds = 8, 20 // bounded: 160 changes per worker set
	remotes := make([]jid.JID, workers)
	for i := range remotes {
		remotes[i] = randomJID(t, fmt.Sprintf("contact%d", i), conformanceDomain)
	}
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for i, remote := range remotes {
		wg.Go(func() {
			for r := range rounds {
				states := allStates()
				s := states[(i+r)%len(states)]
				if err := b.SetState(ctx, user, remote, s); err != nil {
					errc <- fmt.Errorf("SetState: %v", err)
					return
				}
				// Other workers change other pairs meanwhile: this pair
				// must still read back as set.
				if err := checkPair(ctx, b, user, remote, s); err != nil {
					errc <- err
					return
				}
				if _, err := b.LookupUser(ctx, user); err != nil {
					errc <- fmt.Errorf("LookupUser: %v", err)
					return
				}
				if _, err := b.CurrentPresence(ctx, user); err != nil {
					errc <- fmt.Errorf("CurrentPresence: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	for i, remote := range remotes {
		states := allStates()
		want := states[(i+rounds-1)%len(states)]
		if err := checkPair(ctx, b, user, remote, want); err != nil {
			t.Errorf("after the concurrent changes: %v", err)
		}
	}
}

func testBounce(t *testing.T, newBackend func(t *testing.T) (federation.Backend, jid.JID)) {
	b, user := newBackend(t)
	to := randomJID(t, "contact", conformanceDomain)
	// Bounce must return (a Backend that blocks here stalls the server):
	// the test's own timeout catches one that does not.
	b.Bounce(t.Context(), &translate.Message{From: user, To: to, Type: translate.Chat, Body: "lost"},
		stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout})
	b.Bounce(t.Context(), &translate.Subscription{From: user, To: to, Action: translate.Subscribe},
		stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound})
}
