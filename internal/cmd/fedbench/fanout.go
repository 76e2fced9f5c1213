package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
	"github.com/xmppfed/xmppfed/translate"
)

// runIdle is scenario 4: n streams (fewer when the descriptor limit
// cannot be raised enough: see fitStreams) from a host s2s.Server to n domains of
// one peer s2s.Server (SASL EXTERNAL over STARTTLS, one stanza each), then
// the memory they hold while idle. Both ends are in this process: a
// connection is two stream ends.
func runIdle(ctx context.Context, c *config, n int, notes *[]string) ([]sample, error) {
	n, note, err := fitStreams(n)
	if err != nil {
		return nil, err
	}
	addNote(notes, note)
	e, err := newEnv()
	if err != nil {
		return nil, err
	}
	defer e.close()
	f, err := newFleet(e, "idle", n, policy.Settings{SASL: policy.Optional}, false, s2s.AuthSASLExternal)
	if err != nil {
		return nil, err
	}
	sts, err := f.stanzas(n)
	if err != nil {
		return nil, err
	}
	_, _ = f.host.Stats(), f.peer.Stats() // both started: their fixed cost is in the baseline
	before := settled()
	t0 := time.Now()
	if err := f.concurrently(ctx, sts, 0, n, c.workers); err != nil {
		return nil, err
	}
	open := time.Since(t0)
	// An idle stream gives its reader goroutine back after 1.5 s without
	// input (s2s hibernation, Linux): let the last ones opened get there.
	time.Sleep(2 * time.Second)
	after := settled()
	if c.heapProfile != "" {
		if err := writeHeapProfile(c.heapProfile); err != nil {
			return nil, err
		}
	}
	if got := f.inbound.Load(); got != int64(n) {
		return nil, fmt.Errorf("%d streams established for %d domains", got, n)
	}
	if got := len(f.host.Stats().Streams) + len(f.peer.Stats().Streams); got != 2*n {
		return nil, fmt.Errorf("%d stream ends open after settling, want %d", got, 2*n)
	}
	heap := float64(int64(after.mem.HeapInuse) - int64(before.mem.HeapInuse))
	stack := float64(int64(after.mem.StackInuse) - int64(before.mem.StackInuse))
	rss := float64(after.rss - before.rss)
	const v = "sasl-external/starttls"
	return []sample{
		{v, "streams open", "connections", float64(n)},
		{v, "heap per stream end", "B", heap / float64(2*n)},
		{v, "stacks per stream end", "B", stack / float64(2*n)},
		{v, "heap+stacks per stream end", "B", (heap + stack) / float64(2*n)},
		{v, "RSS per stream end", "B", rss / float64(2*n)},
		{v, "heap+stacks per connection", "B", (heap + stack) / float64(n)},
		{v, "RSS per connection", "B", rss / float64(n)},
		{v, "goroutines per connection", "goroutines", float64(after.routine-before.routine) / float64(n)},
		{v, fmt.Sprintf("opening (%d at a time)", c.workers), "streams/s", float64(n) / open.Seconds()},
	}, nil
}

// runFanout is scenario 5: a federation.Server sends per messages to a
// user on each of n remote domains, all hosted by one peer s2s.Server
// under open federation, interleaved (one to each domain, then a second
// to each ...), as fast as Send takes them. The domains' DNS records are
// cached beforehand.
func runFanout(ctx context.Context, c *config, n int, notes *[]string) ([]sample, error) {
	if fit, note, err := fitStreams(n); err != nil {
		return nil, err
	} else if fit < n {
		return nil, errors.New(note)
	}
	e, err := newEnv()
	if err != nil {
		return nil, err
	}
	defer e.close()
	total := n * c.per
	parent := "peer.fan.example"
	stamps := make([]atomic.Int64, total)
	lats := make([]atomic.Int64, total)
	var got, inbound atomic.Int64
	b := &sink{}
	done := make(chan struct{})
	// end counts a delivery; done closes when every message was delivered
	// or bounced.
	end := func() {
		if got.Add(1) == int64(total) {
			close(done)
		}
	}
	b.onBounce = end
	domains := make([]string, n)
	for i := range domains {
		domains[i] = "d" + strconv.Itoa(i) + "." + parent
	}
	pcert, err := e.wildcard(parent)
	if err != nil {
		return nil, err
	}
	if _, err := e.s2sNode(domains, pcert, policy.Settings{SASL: policy.Optional}, false, func(s *s2s.Server) {
		s.Handler = s2s.HandlerFunc(func(_ context.Context, st *s2s.Stanza) error {
			k, err := strconv.Atoi(st.ID)
			if err != nil || k < 0 || k >= total {
				return nil
			}
			lats[k].Store(now() - stamps[k].Load())
			end()
			return nil
		})
		s.StreamEvent = func(ev s2s.StreamEvent) {
			if ev.Type == s2s.StreamEstablished && ev.Direction == s2s.Inbound {
				inbound.Add(1)
			}
		}
	}); err != nil {
		return nil, err
	}
	host, err := e.fedNode("host.fan.example", b)
	if err != nil {
		return nil, err
	}
	// Without this, a thousand SRV queries at once overwhelm the loopback
	// test DNS server (answers lost, retried after the timeout): the
	// measurement would be of dnsdiscotest.
	if err := e.warmDNS(ctx, domains); err != nil {
		return nil, err
	}
	from := jid.MustParse("alice@host.fan.example")
	msgs := make([]*translate.Message, total)
	for r := range c.per {
		for d := range n {
			k := r*n + d
			msgs[k] = &translate.Message{From: from, To: jid.MustParse("bob@" + domains[d]), ID: strconv.Itoa(k), Body: "message " + strconv.Itoa(r) + " of a trickle"}
		}
	}
	_ = host.Stats()
	before := settled()
	t0 := time.Now()
	for k, m := range msgs {
		stamps[k].Store(now())
		if err := host.Send(ctx, m); err != nil {
			return nil, fmt.Errorf("sending message %d: %w", k, err)
		}
	}
	if err := wait(ctx, done, "fan-out delivery", func() string {
		return fmt.Sprintf("%d of %d delivered or bounced, %d streams, %d bounced (first: %s)", got.Load(), total, inbound.Load(), b.bounces.Load(), b.firstBounce())
	}); err != nil {
		return nil, err
	}
	el := time.Since(t0)
	after := settled()
	if bb := b.bounces.Load(); bb != 0 {
		return nil, fmt.Errorf("%w: %d of %d (first: %s)", errBounced, bb, total, b.firstBounce())
	}
	d := make([]time.Duration, total)
	for k := range d {
		d[k] = time.Duration(lats[k].Load())
	}
	heap := float64(int64(after.mem.HeapInuse+after.mem.StackInuse) - int64(before.mem.HeapInuse+before.mem.StackInuse))
	v := fmt.Sprintf("%d domains x %d", n, c.per)
	return []sample{
		{v, "total time", "ms", ms(el)},
		{v, "delivered", "stanzas/s", float64(total) / el.Seconds()},
		{v, "latency p50", "ms", ms(percentile(d, 50))},
		{v, "latency p99", "ms", ms(percentile(d, 99))},
		{v, "streams opened", "streams", float64(inbound.Load())},
		{v, "CPU (user+sys)", "ms", ms(after.cpu - before.cpu)},
		{v, "heap+stacks after, both ends", "MiB", heap / (1 << 20)},
		{v, "RSS growth", "MiB", float64(after.rss-before.rss) / (1 << 20)},
	}, nil
}
