package translate

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"mellium.im/xmpp/jid"
)

// MemRoster is a Roster kept in memory: for tests, examples and small
// hosts that keep no contact list of their own. Addresses are used in
// their bare form. The zero value is an empty roster ready to use; its
// methods may be called concurrently. It forgets everything when the
// process ends.
type MemRoster struct {
	mu    sync.Mutex
	pairs map[rosterKey]rosterItem
	// keys remembers the last few keys built (mu held), so that the
	// stanzas of a conversation do not build the same strings every time.
	keys pairKeys
}

// rosterKey names a pair by the string forms of its bare JIDs.
type rosterKey = pairKey

type rosterItem struct {
	local, remote jid.JID
	state         SubState
}

var _ Roster = (*MemRoster)(nil)

// State returns the state for the pair (None when unknown).
func (r *MemRoster) State(_ context.Context, local, remote jid.JID) (SubState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pairs[r.keys.of(local, remote)].state, nil
}

// SetState stores the state for the pair; None removes the pair.
func (r *MemRoster) SetState(_ context.Context, local, remote jid.JID, s SubState) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.keys.of(local, remote)
	if s == None {
		delete(r.pairs, k)
		return nil
	}
	if r.pairs == nil {
		r.pairs = make(map[rosterKey]rosterItem)
	}
	r.pairs[k] = rosterItem{local.Bare(), remote.Bare(), s}
	return nil
}

// Watchers returns the remote contacts allowed to see local's presence
// (From, FromPendingOut, Both), sorted.
func (r *MemRoster) Watchers(_ context.Context, local jid.JID) ([]jid.JID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := local.Bare().String()
	var out []jid.JID
	for k, it := range r.pairs {
		if k.local == l && it.state.ContactSees() {
			out = append(out, it.remote)
		}
	}
	slices.SortFunc(out, func(a, b jid.JID) int { return cmp.Compare(a.String(), b.String()) })
	return out, nil
}

// Contacts returns the (local, remote) pairs whose local user sees a
// contact at domain (To, ToPendingIn, Both), sorted.
func (r *MemRoster) Contacts(_ context.Context, domain string) ([][2]jid.JID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][2]jid.JID
	for _, it := range r.pairs {
		if it.state.SeesContact() && sameDomain(it.remote.Domainpart(), domain) {
			out = append(out, [2]jid.JID{it.local, it.remote})
		}
	}
	slices.SortFunc(out, func(a, b [2]jid.JID) int {
		return cmp.Or(cmp.Compare(a[0].String(), b[0].String()), cmp.Compare(a[1].String(), b[1].String()))
	})
	return out, nil
}
