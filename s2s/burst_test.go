package s2s_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xmppfed/xmppfed/s2s"
)

// TestBurstInOrder sends stanzas as fast as Send takes them, from several
// goroutines' worth of pressure on one pair, and requires every one to
// arrive exactly once and in order, with nothing bounced. It guards the
// writer's batching (a queue/batch alias once lost stanzas silently).
func TestBurstInOrder(t *testing.T) {
	const n = 3000
	h := newHarness(t)
	got := make(chan string, n)
	h.node("b.example", nodeOpt{handler: s2s.HandlerFunc(func(_ context.Context, st *s2s.Stanza) error {
		got <- st.ID
		return nil
	})})
	a := h.node("a.example", nodeOpt{})
	ctx := context.Background()
	for i := range n {
		st, err := s2s.ParseStanza(fmt.Appendf(nil,
			"<message xmlns='jabber:server' from='u@a.example' to='v@b.example' id='m%d' type='chat'><body>%s</body></message>",
			i, strings.Repeat("x", i%200)))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.srv.Send(ctx, st); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	timeout := time.After(30 * time.Second)
	for i := range n {
		select {
		case id := <-got:
			if want := fmt.Sprintf("m%d", i); id != want {
				t.Fatalf("stanza %d arrived as %s: lost or reordered", i, id)
			}
		case bo := <-a.bounced:
			t.Fatalf("stanza bounced: %v", bo.err)
		case <-timeout:
			t.Fatalf("only %d of %d stanzas arrived", i, n)
		}
	}
}
