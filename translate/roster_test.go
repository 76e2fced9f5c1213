package translate_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppfed/xmppfed/translate"
)

// TestMemRoster checks the zero value, bare-JID keys, Watchers and
// Contacts.
func TestMemRoster(t *testing.T) {
	ctx := context.Background()
	var r translate.MemRoster
	if s, err := r.State(ctx, bob, fedU); err != nil || s != translate.None {
		t.Fatalf("zero roster: %v, %v", s, err)
	}
	if w, err := r.Watchers(ctx, bob); err != nil || len(w) != 0 {
		t.Fatalf("zero roster watchers: %v, %v", w, err)
	}
	set := func(local, remote jid.JID, s translate.SubState) {
		t.Helper()
		if err := r.SetState(ctx, local, remote, s); err != nil {
			t.Fatal(err)
		}
	}
	set(full(t, bob, "desk"), full(t, fedU, "phone"), translate.Both)
	if s, _ := r.State(ctx, bob, fedU); s != translate.Both {
		t.Errorf("state by bare JIDs: %v; want Both (keys are bare)", s)
	}
	set(bob, fedU2, translate.FromPendingOut)
	set(bob, verU, translate.To)
	set(bob, unvU, translate.NonePendingIn)
	set(carol, fedU, translate.ToPendingIn)
	set(carol, verU, translate.From)

	w, _ := r.Watchers(ctx, full(t, bob, "x"))
	if fmt.Sprint(w) != "[alice@fed.example dave@fed.example]" {
		t.Errorf("bob's watchers %v", w)
	}
	c, _ := r.Contacts(ctx, "fed.example")
	if fmt.Sprint(c) != "[[bob@corp.example alice@fed.example] [carol@corp.example alice@fed.example]]" {
		t.Errorf("contacts at fed.example %v", c)
	}
	c, _ = r.Contacts(ctx, "VER.example.")
	if fmt.Sprint(c) != "[[bob@corp.example vera@ver.example]]" {
		t.Errorf("contacts at VER.example. %v", c)
	}
	// None removes the pair.
	set(bob, fedU, translate.None)
	if s, _ := r.State(ctx, bob, fedU); s != translate.None {
		t.Errorf("after None: %v", s)
	}
	if w, _ := r.Watchers(ctx, bob); len(w) != 1 || !w[0].Equal(fedU2) {
		t.Errorf("watchers after removal %v", w)
	}
}

// TestMemRosterConcurrent uses one roster from many goroutines (run with
// -race).
func TestMemRosterConcurrent(t *testing.T) {
	ctx := context.Background()
	var r translate.MemRoster
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			remote := jid.MustParse(fmt.Sprintf("u%d@fed.example", i))
			for _, s := range []translate.SubState{translate.NonePendingOut, translate.To, translate.Both} {
				if err := r.SetState(ctx, bob, remote, s); err != nil {
					t.Error(err)
				}
				if _, err := r.Watchers(ctx, bob); err != nil {
					t.Error(err)
				}
				if _, err := r.Contacts(ctx, "fed.example"); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if w, _ := r.Watchers(ctx, bob); len(w) != 16 {
		t.Errorf("%d watchers; want 16", len(w))
	}
}
