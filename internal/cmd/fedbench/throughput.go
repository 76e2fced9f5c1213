package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
	"github.com/xmppfed/xmppfed/translate"
)

// ring is the number of distinct stanzas (ids 0..ring-1) a throughput run
// cycles through; the window of stanzas in flight is at most half of it,
// so an id is never in flight twice.
const ring = 4096

// now is the meters' timestamp: nanoseconds of the wall clock (both ends
// run in this process, and a run lasts seconds, so a clock step is the
// only error, and it would show as one absurd sample).
func now() int64 { return time.Now().UnixNano() }

// meter times stanzas from send to delivery: the sender stamps slot k
// before sending the stanza with id k, the receiver looks the stamp up.
// At most window stanzas are in flight (sem).
type meter struct {
	stamps []atomic.Int64
	lats   []time.Duration
	got    atomic.Int64
	want   int64
	done   chan struct{}
	sem    chan struct{}
}

func newMeter(n, window int) *meter {
	return &meter{
		stamps: make([]atomic.Int64, ring),
		lats:   make([]time.Duration, n),
		want:   int64(n),
		done:   make(chan struct{}),
		sem:    make(chan struct{}, min(window, ring/2)),
	}
}

// deliver records the delivery of the stanza with id.
func (m *meter) deliver(id string) {
	k, err := strconv.Atoi(id)
	if err != nil || k < 0 || k >= len(m.stamps) {
		return
	}
	lat := time.Duration(now() - m.stamps[k].Load())
	i := m.got.Add(1)
	if i <= m.want {
		m.lats[i-1] = lat
		<-m.sem
	}
	if i == m.want {
		close(m.done)
	}
}

// pump sends m.want stanzas with send(k) (k the slot and id) and waits
// until all are delivered.
func (m *meter) pump(ctx context.Context, send func(k int) error) error {
	for i := range int(m.want) {
		select {
		case m.sem <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("sending stanza %d: %w (%d delivered)", i, ctx.Err(), m.got.Load())
		}
		k := i % ring
		m.stamps[k].Store(now())
		if err := send(k); err != nil {
			return err
		}
	}
	return wait(ctx, m.done, "delivery", func() string { return fmt.Sprintf("%d of %d delivered", m.got.Load(), m.want) })
}

// measure runs a warm-up of min(n, 2000) stanzas (which also establishes
// the stream), then n measured ones with up to c.window in flight, then
// min(n, 2000) one at a time (unloaded latency), and returns the samples
// of variant and the rate of the measured phase.
// cur is where the receiving side finds the current meter.
func measure(ctx context.Context, c *config, n int, variant string, cur *atomic.Pointer[meter], send func(k int) error) ([]sample, float64, error) {
	warm := newMeter(min(n, 2000), c.window)
	cur.Store(warm)
	if err := warm.pump(ctx, send); err != nil {
		return nil, 0, fmt.Errorf("%s warm-up: %w", variant, err)
	}
	m := newMeter(n, c.window)
	cur.Store(m)
	runtime.GC()
	before := snapshot()
	if err := m.pump(ctx, send); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", variant, err)
	}
	after := snapshot()
	el := after.at.Sub(before.at)
	rate := float64(n) / el.Seconds()
	cpu := after.cpu - before.cpu
	// Unloaded latency: one stanza in flight at a time.
	one := newMeter(min(n, 2000), 1)
	cur.Store(one)
	if err := one.pump(ctx, send); err != nil {
		return nil, 0, fmt.Errorf("%s one at a time: %w", variant, err)
	}
	w := strconv.Itoa(cap(m.sem))
	return []sample{
		{variant, "delivered", "stanzas/s", rate},
		{variant, "latency p50 (" + w + " in flight)", "ms", ms(percentile(m.lats, 50))},
		{variant, "latency p99 (" + w + " in flight)", "ms", ms(percentile(m.lats, 99))},
		{variant, "latency p50 (1 in flight)", "ms", ms(percentile(one.lats, 50))},
		{variant, "latency p99 (1 in flight)", "ms", ms(percentile(one.lats, 99))},
		{variant, "allocations", "allocs/stanza", float64(after.mem.Mallocs-before.mem.Mallocs) / float64(n)},
		{variant, "allocated", "B/stanza", float64(after.mem.TotalAlloc-before.mem.TotalAlloc) / float64(n)},
		{variant, "CPU (user+sys)", "µs/stanza", float64(cpu) / float64(time.Microsecond) / float64(n)},
		{variant, "CPU used", "cores", cpu.Seconds() / el.Seconds()},
	}, rate, nil
}

// runThroughput is scenario 1. Each part runs under the pprof label
// level=s2s, level=federation or level=encoding/xml (the goroutines the
// Servers start inherit it), so that go tool pprof -tagfocus=level=s2s
// shows one part of a -cpuprofile alone.
func runThroughput(ctx context.Context, c *config, n int, _ *[]string) ([]sample, error) {
	e, err := newEnv()
	if err != nil {
		return nil, err
	}
	defer e.close()
	var out []sample
	sts := make([]*s2s.Stanza, ring)
	for k := range sts {
		if sts[k], err = chat("alice@a.example/phone", "bob@b.example", strconv.Itoa(k)); err != nil {
			return nil, err
		}
	}
	var s2sRate, fedRate float64
	if c.level != "federation" {
		var s []sample
		var rate float64
		pprof.Do(ctx, pprof.Labels("level", "s2s"), func(ctx context.Context) {
			s, rate, err = throughputS2S(ctx, c, e, n, sts)
		})
		if err != nil {
			return nil, err
		}
		out, s2sRate = append(out, s...), rate
	}
	if c.level != "s2s" {
		var s []sample
		var rate float64
		pprof.Do(ctx, pprof.Labels("level", "federation"), func(ctx context.Context) {
			s, rate, err = throughputFed(ctx, c, e, n)
		})
		if err != nil {
			return nil, err
		}
		out, fedRate = append(out, s...), rate
	}

	// The baseline, in the same run: the same s2s stanza through a plain
	// encoding/xml decode+encode loop, one goroutine.
	runtime.GC()
	before := snapshot()
	pprof.Do(ctx, pprof.Labels("level", "encoding/xml"), func(context.Context) { err = xmlLoop(sts[0].Raw(), n) })
	if err != nil {
		return nil, err
	}
	after := snapshot()
	el := after.at.Sub(before.at)
	base := float64(n) / el.Seconds()
	out = append(out,
		sample{"encoding/xml", "decode+encode", "stanzas/s", base},
		sample{"encoding/xml", "allocations", "allocs/stanza", float64(after.mem.Mallocs-before.mem.Mallocs) / float64(n)},
		sample{"encoding/xml", "CPU (user+sys)", "µs/stanza", float64(after.cpu-before.cpu) / float64(time.Microsecond) / float64(n)},
	)
	if s2sRate != 0 {
		out = append(out, sample{"s2s", "ratio to encoding/xml", "x", s2sRate / base})
	}
	if fedRate != 0 {
		out = append(out, sample{"federation", "ratio to encoding/xml", "x", fedRate / base})
	}
	return out, nil
}

// throughputS2S measures Send -> Handler between two s2s.Servers.
func throughputS2S(ctx context.Context, c *config, e *env, n int, sts []*s2s.Stanza) ([]sample, float64, error) {
	var cur atomic.Pointer[meter]
	set := policy.Settings{SASL: policy.Optional}
	bcert, err := e.ca.IssueDomain("b.example")
	if err != nil {
		return nil, 0, err
	}
	if _, err := e.s2sNode([]string{"b.example"}, bcert, set, false, func(s *s2s.Server) {
		s.Handler = s2s.HandlerFunc(func(_ context.Context, st *s2s.Stanza) error {
			cur.Load().deliver(st.ID)
			return nil
		})
	}); err != nil {
		return nil, 0, err
	}
	acert, err := e.ca.IssueDomain("a.example")
	if err != nil {
		return nil, 0, err
	}
	a, err := e.s2sNode([]string{"a.example"}, acert, set, false, nil)
	if err != nil {
		return nil, 0, err
	}
	return measure(ctx, c, n, "s2s", &cur, func(k int) error { return a.Send(ctx, sts[k]) })
}

// throughputFed measures Send(translate.Message) ->
// Backend.DeliverMessage between two federation.Servers.
func throughputFed(ctx context.Context, c *config, e *env, n int) ([]sample, float64, error) {
	var fcur atomic.Pointer[meter]
	if _, err := e.fedNode("d.example", &sink{onMessage: func(m *translate.Message) { fcur.Load().deliver(m.ID) }}); err != nil {
		return nil, 0, err
	}
	host, err := e.fedNode("c.example", &sink{})
	if err != nil {
		return nil, 0, err
	}
	from, to := jid.MustParse("alice@c.example"), jid.MustParse("bob@d.example")
	body := strings.Repeat("lorem ipsum ", 8)
	msgs := make([]*translate.Message, ring)
	for k := range msgs {
		msgs[k] = &translate.Message{From: from, To: to, ID: strconv.Itoa(k), Body: body}
	}
	return measure(ctx, c, n, "federation", &fcur, func(k int) error { return host.Send(ctx, msgs[k]) })
}

// repeater serves head once, then block forever.
type repeater struct {
	head, block []byte
	off         int
}

func (r *repeater) Read(p []byte) (int, error) {
	if len(r.head) > 0 {
		n := copy(p, r.head)
		r.head = r.head[n:]
		return n, nil
	}
	n := copy(p, r.block[r.off:])
	r.off = (r.off + n) % len(r.block)
	return n, nil
}

// xmlLoop decodes n copies of raw with xml.Decoder.Token and encodes every
// token again with xml.Encoder.EncodeToken, flushing after each stanza.
func xmlLoop(raw []byte, n int) error {
	block := make([]byte, 0, 64*len(raw))
	for range 64 {
		block = append(block, raw...)
	}
	d := xml.NewDecoder(&repeater{head: []byte(`<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>`), block: block})
	enc := xml.NewEncoder(io.Discard)
	if _, err := d.Token(); err != nil {
		return err
	}
	for range n {
		depth := 0
		for {
			tok, err := d.Token()
			if err != nil {
				return err
			}
			if err := enc.EncodeToken(tok); err != nil {
				return err
			}
			switch tok.(type) {
			case xml.StartElement:
				depth++
			case xml.EndElement:
				depth--
			}
			if depth == 0 {
				break
			}
		}
		if err := enc.Flush(); err != nil {
			return err
		}
	}
	return nil
}
