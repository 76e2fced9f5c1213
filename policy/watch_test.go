package policy_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppfed/xmppfed/policy"
)

// waitChanged waits for ch to close, failing the test after a generous
// bound (a hang guard, not a timing assertion).
func waitChanged(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no change seen", what)
	}
}

// TestWatch checks that Watch takes in a change made behind the Policy's
// back, refuses an invalid one, and returns when its context ends.
func TestWatch(t *testing.T) {
	p, st := newPolicy(t, &policy.Config{Partners: []policy.Partner{{Domain: "a.com"}}}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Watch(ctx, time.Millisecond) }()

	ch := p.Changed()
	st.Set(&policy.Config{Partners: []policy.Partner{{Domain: "b.com"}}})
	waitChanged(t, ch, "valid Set")
	if _, err := p.Remote("b.com"); err != nil {
		t.Errorf("after Watch: %v", err)
	}
	gen := p.Generation()

	// An invalid configuration is refused: once Watch has loaded it, the
	// old one is still in force.
	ch = p.Changed()
	st.Set(&policy.Config{Partners: []policy.Partner{{Domain: "x"}}})
	deadline := time.Now().Add(10 * time.Second)
	for changed, _ := st.Changed(ctx); changed; changed, _ = st.Changed(ctx) {
		if time.Now().After(deadline) {
			t.Fatal("Watch never loaded the invalid configuration")
		}
		time.Sleep(time.Millisecond)
	}
	if p.Generation() != gen || len(p.Partners("b.com")) != 1 {
		t.Errorf("an invalid configuration was taken in: generation %d, partners %+v", p.Generation(), p.Partners(""))
	}
	// A valid one after it is taken.
	st.Set(&policy.Config{Partners: []policy.Partner{{Domain: "c.com"}}})
	waitChanged(t, ch, "second Set")
	if p.Generation() != gen+1 || len(p.Partners("c.com")) != 1 {
		t.Errorf("generation %d, partners %+v", p.Generation(), p.Partners(""))
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch returned %v; want context.Canceled", err)
	}
}

// plainStore is a Store without Watcher.
type plainStore struct {
	m     policy.MemStore
	loads atomic.Int64
}

func (s *plainStore) Load(ctx context.Context) (*policy.Config, error) {
	s.loads.Add(1)
	return s.m.Load(ctx)
}

func (s *plainStore) Save(ctx context.Context, c *policy.Config) error { return s.m.Save(ctx, c) }

// TestWatchPlainStore checks Watch with a Store that is not a Watcher:
// reloaded and compared each time, changing only on a real change.
func TestWatchPlainStore(t *testing.T) {
	st := new(plainStore)
	p, err := policy.New(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Watch(ctx, time.Millisecond) }()
	// Wait until Watch has reloaded a few times without a change.
	for st.loads.Load() < 5 {
		time.Sleep(time.Millisecond)
	}
	if p.Generation() != 1 {
		t.Errorf("reloading an unchanged store changed the generation to %d", p.Generation())
	}
	ch := p.Changed()
	cfg, _ := st.m.Load(ctx)
	cfg.Partners = []policy.Partner{{Domain: "z.com"}}
	st.m.Set(cfg)
	waitChanged(t, ch, "plain store")
	if len(p.Partners("z.com")) != 1 {
		t.Errorf("partners %+v", p.Partners(""))
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch returned %v", err)
	}
}

// brokenWatcher is a MemStore whose Changed fails until ok is set.
type brokenWatcher struct {
	*policy.MemStore
	ok    atomic.Bool
	calls atomic.Int64
}

func (b *brokenWatcher) Changed(ctx context.Context) (bool, error) {
	b.calls.Add(1)
	if !b.ok.Load() {
		return false, errors.New("cannot stat")
	}
	return b.MemStore.Changed(ctx)
}

// TestWatchWatcherError checks that a failing Watcher is logged and
// retried, not fatal.
func TestWatchWatcherError(t *testing.T) {
	st := &brokenWatcher{MemStore: policy.NewMemStore(nil)}
	p, err := policy.New(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Watch(ctx, time.Millisecond) }()
	for st.calls.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	ch := p.Changed()
	st.Set(&policy.Config{Partners: []policy.Partner{{Domain: "w.com"}}})
	st.ok.Store(true)
	waitChanged(t, ch, "after the Watcher recovered")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch returned %v", err)
	}
}
