package s2s_test

import (
	"context"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/internal/clock"
	"github.com/xmppfed/xmppfed/s2s"
)

// waitIdle waits (bounded) until no attempt is running in a's pool.
func waitIdle(t *testing.T, srv *s2s.Server) int {
	t.Helper()
	for range 2000 {
		pairs, dialing := s2s.PoolState(srv)
		if dialing == 0 {
			return pairs
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("pool attempt still running after 2s")
	return 0
}

// TestPoolRetryAndPrune: after a failure the next stanza is tried again
// (not bounced for minutes without trying), the pool retries in the
// background while the pair is in use, and once nobody has sent to the
// pair for the retry cap its entry is dropped.
func TestPoolRetryAndPrune(t *testing.T) {
	h := newHarness(t)
	fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	a := h.node("a.example", nodeOpt{mod: func(s *s2s.Server) { s2s.SetClock(s, fc) }})
	h.dns.AddSRV("_xmpp-server._tcp", "dead.example", ".", 0, 0, 0)
	ctx := context.Background()

	if err := a.srv.Send(ctx, msg(t, "u@a.example", "v@dead.example", "1")); err != nil {
		t.Fatal(err)
	}
	if bo := recv(t, a.bounced, "first bounce"); bo.err.Condition != stanza.RemoteServerNotFound {
		t.Fatalf("first bounce %v", bo.err.Condition)
	}
	if n := waitIdle(t, a.srv); n != 1 {
		t.Fatalf("pool holds %d pairs, want 1", n)
	}
	// Within minRetry of the failed attempt the next stanza waits for it
	// (a stanza flood dials a dead domain at most once a second) ...
	if err := a.srv.Send(ctx, msg(t, "u@a.example", "v@dead.example", "2")); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, a.srv) // an immediate attempt would have bounced by now
	select {
	case bo := <-a.bounced:
		t.Fatalf("bounced without a new attempt: %v", bo.err)
	default:
	}
	// ... and is tried, then bounced, once that second has passed.
	fc.Advance(time.Second)
	recv(t, a.bounced, "second bounce")
	waitIdle(t, a.srv)

	// Background retries run while the pair was used within 5 minutes;
	// after that the entry goes away.
	for range 40 {
		fc.Advance(30 * time.Second)
		if waitIdle(t, a.srv) == 0 {
			break
		}
	}
	if n := waitIdle(t, a.srv); n != 0 {
		t.Fatalf("pool still holds %d pairs 20 minutes after the last stanza", n)
	}
	select {
	case bo := <-a.bounced:
		t.Fatalf("a background retry bounced something: %v", bo.err)
	default:
	}
	// The pair works again afterwards: a new stanza gets a fresh attempt.
	if err := a.srv.Send(ctx, msg(t, "u@a.example", "v@dead.example", "3")); err != nil {
		t.Fatal(err)
	}
	recv(t, a.bounced, "bounce after prune")
}
