package policy

import (
	"context"
	"fmt"
	"sync"

	"mellium.im/xmpp/jid"
)

// UserTable is an in-memory Directory and Granter: for tests, examples
// and small hosts. The zero value is an empty table, in which every user
// is unknown. Its methods may be called concurrently.
type UserTable struct {
	mu    sync.RWMutex
	users map[string]User // bare JID -> user
}

var (
	_ Directory = (*UserTable)(nil)
	_ Granter   = (*UserTable)(nil)
)

// Set adds or replaces the local user (its bare address is used).
func (t *UserTable) Set(user jid.JID, u User) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.users == nil {
		t.users = make(map[string]User)
	}
	t.users[user.Bare().String()] = u
}

// Remove removes the local user; it is unknown afterwards.
func (t *UserTable) Remove(user jid.JID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.users, user.Bare().String())
}

// LookupUser returns the user, or an error wrapping ErrUnknownUser.
func (t *UserTable) LookupUser(ctx context.Context, user jid.JID) (User, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	u, ok := t.users[user.Bare().String()]
	if !ok {
		return User{}, fmt.Errorf("%w %q", ErrUnknownUser, user.Bare().String())
	}
	return u, nil
}

// SetUserPolicy sets the user's per-user policy name ("" removes it); it
// fails for an unknown user.
func (t *UserTable) SetUserPolicy(ctx context.Context, user jid.JID, name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := user.Bare().String()
	u, ok := t.users[k]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownUser, k)
	}
	u.Policy = name
	t.users[k] = u
	return nil
}
