package federation_test

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

// countingHost is the recording host without the recording: it counts
// delivered messages and wakes a waiter, so that a benchmark keeps no
// per-message state.
type countingHost struct {
	*host
	delivered atomic.Int64
	wake      chan struct{}
}

func (h *countingHost) DeliverMessage(_ context.Context, m *translate.Message) error {
	if !h.known(m.To) {
		return translate.ErrUnknownUser
	}
	h.delivered.Add(1)
	select {
	case h.wake <- struct{}{}:
	default:
	}
	return nil
}

// waitDelivered waits until h has delivered at least n messages, at most
// hang in all.
func (h *countingHost) waitDelivered(tb testing.TB, n int64) {
	deadline := time.NewTimer(hang)
	defer deadline.Stop()
	for h.delivered.Load() < n {
		select {
		case <-h.wake:
		case <-deadline.C:
			tb.Fatalf("%d messages delivered after %v, want %d", h.delivered.Load(), hang, n)
		}
	}
}

// unlimited is the policy of w.node with partner as a Federated partner,
// and no rate limit: the benchmark measures the path, not the policy's
// default 1000 stanzas/s.
func unlimited(tb testing.TB, h *host, partner string) *policy.Policy {
	c := &policy.Config{
		Policies: []policy.AccessPolicy{{Name: policy.GlobalPolicy, EnableXMPPAccess: true, EnableFederationAccess: true}},
		Partners: []policy.Partner{{Domain: partner, Type: policy.Federated, Settings: policy.Settings{SASL: policy.Optional}}},
		Gateway:  policy.Gateway{StanzasPerSecond: -1},
	}
	pol, err := policy.New(context.Background(), policy.NewMemStore(c), &policy.Options{Directory: h})
	if err != nil {
		tb.Fatal(err)
	}
	return pol
}

// BenchmarkSendDeliver measures federation.Server.Send of a chat message
// to the peer's Backend.DeliverMessage over one established stream, on
// loopback: translate's Outbound and Encode, the s2s pool, the stream's
// writer and reader, the peer's Handler, translate's InboundFramed and the
// Gate. At most 256 messages are in flight; the figure per op is one
// message through the whole path.
func BenchmarkSendDeliver(b *testing.B) {
	w := newWorld(b)
	w.mod = func(s *federation.Server) { s.Policy = unlimited(b, s.Backend.(*host), "b.example") }
	a := w.node("a.example", nil, "alice")
	var peer *countingHost
	w.mod = func(s *federation.Server) {
		s.Policy = unlimited(b, s.Backend.(*host), "a.example")
		peer = &countingHost{host: s.Backend.(*host), wake: make(chan struct{}, 1)}
		s.Backend = peer
	}
	w.node("b.example", nil, "bob")
	w.mod = nil
	alice, bob := mustJID(b, "alice@a.example"), mustJID(b, "bob@b.example")
	body := strings.Repeat("lorem ipsum ", 8)
	const ring, window = 1024, 256
	msgs := make([]*translate.Message, ring)
	for k := range msgs {
		msgs[k] = &translate.Message{From: alice, To: bob, ID: "m" + strconv.Itoa(k), Type: translate.Chat, Body: body}
	}
	// The stream is up before the clock starts.
	send(b, a, msgs[0])
	peer.waitDelivered(b, 1)
	ctx := context.Background()
	sent := int64(1)
	b.ReportAllocs()
	for b.Loop() {
		if err := a.srv.Send(ctx, msgs[sent%ring]); err != nil {
			b.Fatal(err)
		}
		sent++
		if sent-peer.delivered.Load() > window {
			peer.waitDelivered(b, sent-window)
		}
	}
	peer.waitDelivered(b, sent)
}
