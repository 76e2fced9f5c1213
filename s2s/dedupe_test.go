package s2s

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppfed/xmppfed/internal/clock"
)

func dedupeServer(t *testing.T) (*Server, *clock.Fake) {
	t.Helper()
	c := clock.NewFake(time.Unix(1e9, 0))
	s := &Server{Domains: []string{"b.example"}, clock: c}
	s.init()
	return s, c
}

func dedupeStanza(t *testing.T, kind, from, to, id, typ string) *Stanza {
	t.Helper()
	raw := fmt.Sprintf("<%s xmlns='jabber:server' from='%s' to='%s'", kind, from, to)
	if id != "" {
		raw += " id='" + id + "'"
	}
	if typ != "" {
		raw += " type='" + typ + "'"
	}
	st, err := ParseStanza([]byte(raw + "/>"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// smStream is a stream from a.example as the resend check sees it, with
// XEP-0198 counting the peer's stanzas or not.
func smStream(id string, sm bool) *stream {
	return &stream{id: id, remote: "a.example", rt: &runState{smEnabled: sm}}
}

// TestResentOnlyCounted: stanzas received without XEP-0198 are not
// recorded (the peer cannot resend them), and while nothing is recorded
// nothing is looked up; a resend arriving on a stream without XEP-0198 is
// still caught.
func TestResentOnlyCounted(t *testing.T) {
	s, _ := dedupeServer(t)
	plain1, plain2 := smStream("p1", false), smStream("p2", false)
	m := dedupeStanza(t, "message", "u@a.example/r", "v@b.example", "m1", "chat")
	if s.resent(plain1, m) || s.resent(plain2, m) {
		t.Fatal("a stanza received without XEP-0198 was recorded")
	}
	if s.dedupe.entries.Load() != 0 || s.dedupe.peers != nil {
		t.Fatalf("%d entries recorded without XEP-0198", s.dedupe.entries.Load())
	}
	sm := smStream("sm", true)
	if s.resent(sm, m) || !s.resent(plain2, m) {
		t.Fatal("a resend after a stream with XEP-0198 was not caught")
	}
	if got := s.dedupe.entries.Load(); got != 1 {
		t.Errorf("entries = %d, want 1", got)
	}
}

// TestResentOnlyAcrossStreams: a key seen on another stream of the same
// domain is a resend; on the same stream, without an id, with another
// kind, type class, address or id, or once aged out, it is not.
func TestResentOnlyAcrossStreams(t *testing.T) {
	s, c := dedupeServer(t)
	s1 := smStream("stream-1", true)
	s2 := smStream("stream-2", true)
	m := dedupeStanza(t, "message", "u@a.example/r", "v@b.example", "m1", "chat")
	if s.resent(s1, m) {
		t.Fatal("first sight reported as a resend")
	}
	if s.resent(s1, m) {
		t.Fatal("a repeat on the same stream dropped (ids are unique per stream only)")
	}
	if !s.resent(s2, m) {
		t.Fatal("the same stanza on a new stream not reported as a resend")
	}
	for _, other := range []*Stanza{
		dedupeStanza(t, "message", "u@a.example/r", "v@b.example", "", "chat"),
		dedupeStanza(t, "iq", "u@a.example/r", "v@b.example", "m1", "get"),
		dedupeStanza(t, "message", "u@a.example/r", "v@b.example", "m1", "error"),
		dedupeStanza(t, "message", "u@a.example/r2", "v@b.example", "m1", "chat"),
		dedupeStanza(t, "message", "u@a.example/r", "w@b.example", "m1", "chat"),
		dedupeStanza(t, "message", "u@a.example/r", "v@b.example", "m2", "chat"),
	} {
		if s.resent(s2, other) {
			t.Errorf("%s reported as a resend of %s", other.Raw(), m.Raw())
		}
	}
	noID := dedupeStanza(t, "message", "u@a.example/r", "v@b.example", "", "chat")
	if s.resent(s1, noID) || s.resent(s2, noID) {
		t.Error("a stanza without an id reported as a resend")
	}
	c.Advance(dedupeAge + time.Second)
	if s.resent(s2, dedupeStanza(t, "message", "u@a.example/r", "v@b.example", "m2", "chat")) {
		t.Error("an entry older than dedupeAge matched")
	}
	if got := s.dedupe.drops.Load(); got != 1 {
		t.Errorf("drops = %d, want 1", got)
	}
}

// TestResentRingBounded: at most dedupeMax keys per domain are kept, the
// oldest evicted first, and idle domains are swept away.
func TestResentRingBounded(t *testing.T) {
	s, c := dedupeServer(t)
	s1 := smStream("stream-1", true)
	s2 := smStream("stream-2", true)
	n := dedupeMax + 100
	for i := range n {
		if s.resent(s1, dedupeStanza(t, "message", "u@a.example", "v@b.example", fmt.Sprint(i), "")) {
			t.Fatalf("stanza %d reported as a resend", i)
		}
	}
	r := s.dedupe.peers["a.example"]
	if r.n != dedupeMax || len(r.idx) != dedupeMax || len(r.ents) != dedupeMax {
		t.Fatalf("ring holds %d entries (%d indexed, array %d), want %d", r.n, len(r.idx), len(r.ents), dedupeMax)
	}
	// A match records nothing; a miss records (and evicts) one key.
	for _, i := range []int{100, n - 1} {
		if !s.resent(s2, dedupeStanza(t, "message", "u@a.example", "v@b.example", fmt.Sprint(i), "")) {
			t.Errorf("kept key %d did not match", i)
		}
	}
	for _, i := range []int{0, 99} {
		if s.resent(s2, dedupeStanza(t, "message", "u@a.example", "v@b.example", fmt.Sprint(i), "")) {
			t.Errorf("evicted key %d still matched", i)
		}
	}
	// Another domain's traffic sweeps a.example once its entries aged.
	c.Advance(dedupeAge + time.Second)
	for i := range dedupeSweep {
		s.resent(s1, dedupeStanza(t, "message", "x@c.example", "v@b.example", fmt.Sprint(i), ""))
	}
	if _, ok := s.dedupe.peers["a.example"]; ok {
		t.Error("an idle domain's record was not swept")
	}
	total := 0
	for _, r := range s.dedupe.peers {
		total += r.n
	}
	if got := s.dedupe.entries.Load(); got != int64(total) {
		t.Errorf("entries = %d, the rings hold %d", got, total)
	}
}

// TestResentTotalBounded: over all domains at most dedupeTotal keys are
// kept (give or take the checks between two sweeps), the oldest evicted
// first whichever domain holds them, and a ring that lost most of its
// entries gives its array back.
func TestResentTotalBounded(t *testing.T) {
	s, c := dedupeServer(t)
	st := smStream("stream-1", true)
	const per = dedupeMax / 4
	const domains = dedupeTotal * 5 / 4 / per // a quarter more than the total allows
	dom := func(d int) string { return fmt.Sprintf("u@d%d.example", d) }
	// Round-robin, one millisecond apart: the oldest keys are the first
	// round's, spread over every domain.
	for i := range per {
		for d := range domains {
			s.resent(st, dedupeStanza(t, "message", dom(d), "v@b.example", fmt.Sprint(i), ""))
			c.Advance(time.Microsecond)
		}
	}
	got := s.dedupe.entries.Load()
	if got > dedupeTotal+dedupeSweep {
		t.Fatalf("%d keys kept, want at most %d + %d", got, dedupeTotal, dedupeSweep)
	}
	total := 0
	for _, r := range s.dedupe.peers {
		total += r.n
		if len(r.ents) > 4*max(r.n, 16) {
			t.Errorf("a ring of %d entries keeps an array of %d", r.n, len(r.ents))
		}
	}
	if int64(total) != got {
		t.Errorf("entries = %d, the rings hold %d", got, total)
	}
	other := smStream("stream-2", true)
	for d := range domains {
		if !s.resent(other, dedupeStanza(t, "message", dom(d), "v@b.example", fmt.Sprint(per-1), "")) {
			t.Errorf("domain %d: its newest key was evicted", d)
		}
		if s.resent(other, dedupeStanza(t, "message", dom(d), "v@b.example", "0", "")) {
			t.Errorf("domain %d: its oldest key was kept over the total", d)
		}
	}
}

// TestResentConcurrent: streams of many domains check and record at once
// while sweeps run (for -race), and a key recorded by one stream is still
// caught on another.
func TestResentConcurrent(t *testing.T) {
	s, c := dedupeServer(t)
	const workers, each = 8, 3 * dedupeSweep
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := smStream(fmt.Sprint("stream-", w), true)
			other := smStream(fmt.Sprint("other-", w), true)
			from := fmt.Sprintf("u@d%d.example", w%3) // domains shared by workers
			for i := range each {
				id := fmt.Sprintf("%d-%d", w, i)
				if s.resent(st, dedupeStanza(t, "message", from, "v@b.example", id, "")) {
					t.Errorf("worker %d: new stanza %s reported as a resend", w, id)
					return
				}
				if i%97 == 0 {
					c.Advance(time.Second) // ages some entries past sweeps
					if !s.resent(other, dedupeStanza(t, "message", from, "v@b.example", id, "")) {
						t.Errorf("worker %d: resend of %s not caught", w, id)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkResent is the per-stanza cost of the resend check on a busy
// domain (the record full: every call evicts one key).
func BenchmarkResent(b *testing.B) {
	c := clock.NewFake(time.Unix(1e9, 0))
	s := &Server{Domains: []string{"b.example"}, clock: c}
	s.init()
	st := smStream("stream-1", true)
	stz := make([]*Stanza, 2*dedupeMax)
	for i := range stz {
		p, err := ParseStanza([]byte(fmt.Sprintf("<message xmlns='jabber:server' from='u@a.example/r' to='v@b.example' id='%d'/>", i)))
		if err != nil {
			b.Fatal(err)
		}
		stz[i] = p
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s.resent(st, stz[i%len(stz)])
	}
}

// BenchmarkResentParallel is BenchmarkResent with one stream per
// goroutine, each from its own domain: the domains' records have their own
// locks, so the checks do not wait for each other. The real clock: the
// fake one's lock would be the contention measured.
func BenchmarkResentParallel(b *testing.B) {
	s := &Server{Domains: []string{"b.example"}}
	s.init()
	var next atomic.Int32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := next.Add(1)
		st := smStream(fmt.Sprint("stream-", w), true)
		stz := make([]*Stanza, 2*dedupeMax)
		for i := range stz {
			p, err := ParseStanza([]byte(fmt.Sprintf("<message xmlns='jabber:server' from='u@d%d.example/r' to='v@b.example' id='%d'/>", w, i)))
			if err != nil {
				b.Error(err)
				return
			}
			stz[i] = p
		}
		for i := 0; pb.Next(); i++ {
			s.resent(st, stz[i%len(stz)])
		}
	})
}

// BenchmarkResentUncounted is the check's cost on a stream without
// XEP-0198 while nothing is recorded: streams to servers that do not
// offer it.
func BenchmarkResentUncounted(b *testing.B) {
	s := &Server{Domains: []string{"b.example"}, clock: clock.NewFake(time.Unix(1e9, 0))}
	s.init()
	st := smStream("stream-1", false)
	p, err := ParseStanza([]byte("<message xmlns='jabber:server' from='u@a.example/r' to='v@b.example' id='x'/>"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.resent(st, p)
	}
}
