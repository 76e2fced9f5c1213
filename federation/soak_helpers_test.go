package federation_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

// ---- Configuration ----

// soakConfig is TestSoak's configuration, read from the environment.
type soakConfig struct {
	domains     int           // remote domains (XMPPFED_SOAK_DOMAINS)
	users       int           // users per remote domain (XMPPFED_SOAK_USERS)
	hostUsers   int           // users of the host (derived: one per 30 remote users, 4..100)
	duration    time.Duration // load phase (XMPPFED_SOAK_DURATION)
	rate        int           // operations started per second (XMPPFED_SOAK_RATE)
	drain       time.Duration // longest wait for the last deliveries (XMPPFED_SOAK_DRAIN)
	setup       time.Duration // longest wait for one wave of subscriptions
	wave        int           // domains whose subscriptions are set up at once
	sample      time.Duration // sampling period of the memory curve
	out         string        // JSON lines file (XMPPFED_SOAK_OUT), "" for none
	log         string        // debug log of every server (XMPPFED_SOAK_LOG), "" for none
	rssBound    float64       // last third's mean RSS at most (1+rssBound) x the middle third's
	rssAssertAt time.Duration // the RSS bound is asserted from this duration on
}

// Soak defaults: small enough for `go test -race ./federation/` to stay a
// few seconds.
const (
	soakDefaultDomains  = 20
	soakDefaultUsers    = 3
	soakDefaultDuration = 2 * time.Second
	soakDefaultRate     = 200
	soakDefaultDrain    = 60 * time.Second
	soakMaxDomains      = 2000
	soakMaxUsers        = 20
	soakMaxDuration     = time.Hour
	soakMaxRate         = 20000
	// soakRSSBound: in a run of soakRSSAssertAt or longer, the mean RSS of
	// the load phase's last third may exceed the middle third's by at most
	// 10%: a steady load on a fixed set of streams must not grow the
	// process (the test keeps only fixed-size tables per stanza).
	soakRSSBound    = 0.10
	soakRSSAssertAt = time.Minute
)

// soakEnv reads the configuration; a malformed or out-of-range value fails
// the test.
func soakEnv(t *testing.T) soakConfig {
	t.Helper()
	c := soakConfig{
		domains: soakDefaultDomains, users: soakDefaultUsers, duration: soakDefaultDuration,
		rate: soakDefaultRate, drain: soakDefaultDrain, setup: time.Minute, wave: 50,
		out: os.Getenv("XMPPFED_SOAK_OUT"), log: os.Getenv("XMPPFED_SOAK_LOG"), rssBound: soakRSSBound, rssAssertAt: soakRSSAssertAt,
	}
	num := func(name string, v *int, lo, hi int) {
		s := os.Getenv(name)
		if s == "" {
			return
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			t.Fatalf("%s=%q: want an integer in [%d, %d]", name, s, lo, hi)
		}
		*v = n
	}
	dur := func(name string, v *time.Duration, hi time.Duration) {
		s := os.Getenv(name)
		if s == "" {
			return
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > hi {
			t.Fatalf("%s=%q: want a duration in (0, %v]", name, s, hi)
		}
		*v = d
	}
	num("XMPPFED_SOAK_DOMAINS", &c.domains, 1, soakMaxDomains)
	num("XMPPFED_SOAK_USERS", &c.users, 1, soakMaxUsers)
	num("XMPPFED_SOAK_RATE", &c.rate, 1, soakMaxRate)
	dur("XMPPFED_SOAK_DURATION", &c.duration, soakMaxDuration)
	dur("XMPPFED_SOAK_DRAIN", &c.drain, 10*time.Minute)
	c.hostUsers = min(max(c.domains*c.users/30, 4), 100)
	// About 60 samples over the load phase, every 250 ms to 5 s.
	c.sample = min(max(c.duration/60, 250*time.Millisecond), 5*time.Second)
	return c
}

// ---- Stanza kinds and marks ----

// soakKind is what an operation sends; the direction follows from it.
type soakKind uint8

const (
	inMessage   soakKind = iota // a remote user's message to its host contact
	inPresence                  // a remote user's directed presence to its host contact
	outMessage                  // a host user's message to a remote contact
	outPresence                 // a host user's presence, broadcast to its remote watchers
	soakKinds
)

func (k soakKind) String() string {
	return [...]string{"in-message", "in-presence", "out-message", "out-presence"}[k]
}

// direction is "in" (remote to host) or "out" (host to remote).
func (k soakKind) direction() string {
	if k <= inPresence {
		return "in"
	}
	return "out"
}

// mark is the text carried by a tracked stanza (a message's body, a
// presence's note): its first slot and its send time since the soak's
// origin (monotonic).
func mark(slot uint64, sent time.Duration) string {
	return "soak " + strconv.FormatUint(slot, 10) + " " + strconv.FormatInt(int64(sent), 10)
}

// parseMark reads a mark; ok is false for any other text (a setup
// presence, a generic label).
func parseMark(s string) (slot uint64, sent time.Duration, ok bool) {
	rest, found := strings.CutPrefix(s, "soak ")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rest, " ")
	if !found {
		return 0, 0, false
	}
	slot, err1 := strconv.ParseUint(a, 10, 64)
	ns, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return slot, time.Duration(ns), true
}

// ---- Fixed-size tables ----

// bitset is a fixed set of bits, set concurrently.
type bitset []atomic.Uint64

func newBitset(n uint64) bitset { return make(bitset, (n+63)/64) }

// set sets bit i and reports whether it was already set.
func (b bitset) set(i uint64) bool {
	m := uint64(1) << (i % 64)
	return b[i/64].Or(m)&m != 0
}

func (b bitset) has(i uint64) bool { return b[i/64].Load()&(uint64(1)<<(i%64)) != 0 }

// histogram counts durations in log-linear buckets (16 per power of two,
// at most 1/16 relative error) of microseconds; its size is fixed.
type histogram struct {
	n       [64 * 16]atomic.Int64
	count   atomic.Int64
	maxNano atomic.Int64
}

func bucketOf(d time.Duration) int {
	us := uint64(max(d, 0) / time.Microsecond)
	if us < 16 {
		return int(us)
	}
	e := bits.Len64(us) - 5 // us >> e is in [16, 32)
	return (e+1)*16 + int(us>>e) - 16
}

// upper returns the upper bound of bucket b.
func upper(b int) time.Duration {
	if b < 16 {
		return time.Duration(b+1) * time.Microsecond
	}
	e, m := b/16-1, b%16+16
	return time.Duration(uint64(m+1)<<e) * time.Microsecond
}

func (h *histogram) add(d time.Duration) {
	h.n[bucketOf(d)].Add(1)
	h.count.Add(1)
	for {
		cur := h.maxNano.Load()
		if int64(d) <= cur || h.maxNano.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// quantile returns the upper bound of the bucket holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	total := h.count.Load()
	if total == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(total)))
	var seen int64
	for b := range h.n {
		seen += h.n[b].Load()
		if seen >= max(rank, 1) {
			return min(upper(b), time.Duration(h.maxNano.Load()))
		}
	}
	return time.Duration(h.maxNano.Load())
}

// latency is the summary of one histogram.
type latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func (h *histogram) summary() latency {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return latency{Count: h.count.Load(), P50: ms(h.quantile(0.50)), P99: ms(h.quantile(0.99)), Max: ms(time.Duration(h.maxNano.Load()))}
}

func (l latency) String() string {
	return fmt.Sprintf("n=%d p50=%.2fms p99=%.2fms max=%.2fms", l.Count, l.P50, l.P99, l.Max)
}

// merge adds o's counts to h (o is no longer written to).
func (h *histogram) merge(o *histogram) {
	for b := range o.n {
		h.n[b].Add(o.n[b].Load())
	}
	h.count.Add(o.count.Load())
	if m := o.maxNano.Load(); m > h.maxNano.Load() {
		h.maxNano.Store(m)
	}
}

// ---- Samples ----

// soakSample is one point of the curve, written as a JSON line.
type soakSample struct {
	Elapsed    float64 `json:"t_s"` // since the Env started
	Phase      string  `json:"phase"`
	RSSKiB     int64   `json:"rss_kib"`
	HeapInuse  uint64  `json:"heap_inuse"`
	HeapAlloc  uint64  `json:"heap_alloc"`
	HeapSys    uint64  `json:"heap_sys"`
	NumGC      uint32  `json:"num_gc"`
	Goroutines int     `json:"goroutines"`
	Sent       int64   `json:"sent"`      // tracked deliveries expected so far
	Delivered  int64   `json:"delivered"` // tracked deliveries so far
	PerSecond  float64 `json:"delivered_per_s"`
	Queued     int     `json:"queued"`  // the host's outbound pool
	Streams    int     `json:"streams"` // the host's established streams
	FDs        int     `json:"fds"`     // open descriptors (-1: unknown)
}

// vmRSS returns VmRSS from /proc/self/status in KiB, or -1.
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// jsonLines writes values as JSON lines to a file, or nowhere.
type jsonLines struct {
	mu  sync.Mutex
	f   *os.File
	enc *json.Encoder
	err error
}

func openJSONLines(t *testing.T, path string) *jsonLines {
	t.Helper()
	j := new(jsonLines)
	if path == "" {
		return j
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("XMPPFED_SOAK_OUT: %v", err)
	}
	j.f, j.enc = f, json.NewEncoder(f)
	return j
}

func (j *jsonLines) write(v any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.enc != nil && j.err == nil {
		j.err = j.enc.Encode(v)
	}
}

func (j *jsonLines) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f, j.enc = nil, nil
	if j.err != nil {
		return j.err
	}
	return err
}

// takeSample reads the process's memory and goroutines.
func takeSample(phase string, elapsed time.Duration) soakSample {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return soakSample{
		Elapsed: elapsed.Seconds(), Phase: phase, RSSKiB: vmRSS(),
		HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc, HeapSys: ms.HeapSys, NumGC: ms.NumGC,
		Goroutines: runtime.NumGoroutine(), FDs: openFDs(),
	}
}

// openFDs returns the number of open descriptors, or -1.
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// thirds returns the mean RSS of the middle and last thirds of samples.
func thirds(samples []soakSample) (middle, last float64, ok bool) {
	n := len(samples)
	if n < 6 {
		return 0, 0, false
	}
	mean := func(s []soakSample) float64 {
		var sum float64
		for _, x := range s {
			sum += float64(x.RSSKiB)
		}
		return sum / float64(len(s))
	}
	return mean(samples[n/3 : 2*n/3]), mean(samples[2*n/3:]), true
}

// lockedWriter serializes writes from many loggers to one file.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// ---- The host's Backend ----

// soakBackend is the host: fixed users, a MemRoster, and deliveries
// passed to the soak's counters rather than recorded (nothing grows per
// stanza).
type soakBackend struct {
	translate.MemRoster
	users map[string]bool // bare JIDs; read-only once the soak starts
	s     *soak
}

func (b *soakBackend) known(user jid.JID) bool { return b.users[user.Bare().String()] }

func (b *soakBackend) DeliverMessage(_ context.Context, m *translate.Message) error {
	if !b.known(m.To) {
		return translate.ErrUnknownUser
	}
	b.s.hostMessage(m)
	return nil
}

func (b *soakBackend) DeliverPresence(_ context.Context, p *translate.Presence) error {
	if !b.known(p.To) {
		return translate.ErrUnknownUser
	}
	b.s.hostPresence(p)
	return nil
}

func (b *soakBackend) DeliverSubscription(_ context.Context, s *translate.Subscription) error {
	if !b.known(s.To) {
		return translate.ErrUnknownUser
	}
	b.s.hostSubscription(s)
	return nil
}

func (b *soakBackend) CurrentPresence(_ context.Context, user jid.JID) (*translate.Presence, error) {
	if !b.known(user) {
		return nil, translate.ErrUnknownUser
	}
	return &translate.Presence{From: user.Bare(), Availability: translate.Available, Note: "setting up"}, nil
}

func (b *soakBackend) LookupUser(_ context.Context, user jid.JID) (policy.User, error) {
	if !b.known(user) {
		return policy.User{}, policy.ErrUnknownUser
	}
	return policy.User{}, nil
}

func (b *soakBackend) Bounce(_ context.Context, v translate.Stanza, reason stanza.Error) {
	b.s.hostBounce(v, reason)
}

// soakMetrics counts the host Server's metrics (federation.Metrics).
type soakMetrics struct {
	opened, closed, failed, bounced, denied, stanzasIn, stanzasOut, maxQueue atomic.Int64
}

func (m *soakMetrics) StreamOpened(direction, auth string) { m.opened.Add(1) }
func (m *soakMetrics) StreamClosed(direction, auth string) { m.closed.Add(1) }
func (m *soakMetrics) Stanza(direction, partner string) {
	if direction == "in" {
		m.stanzasIn.Add(1)
	} else {
		m.stanzasOut.Add(1)
	}
}
func (m *soakMetrics) Bounced(condition string)      { m.bounced.Add(1) }
func (m *soakMetrics) Denied(rule string)            { m.denied.Add(1) }
func (m *soakMetrics) NegotiationFailed(step string) { m.failed.Add(1) }
func (m *soakMetrics) QueueDepth(n int) {
	for {
		cur := m.maxQueue.Load()
		if int64(n) <= cur || m.maxQueue.CompareAndSwap(cur, int64(n)) {
			return
		}
	}
}

// soakStreams is the host's stream counts at one point.
type soakStreams struct {
	Opened     int64 `json:"opened"`
	Closed     int64 `json:"closed"`
	Failed     int64 `json:"failed"`
	Bounced    int64 `json:"bounced"`
	Denied     int64 `json:"denied"`
	StanzasIn  int64 `json:"stanzas_in"`
	StanzasOut int64 `json:"stanzas_out"`
	MaxQueue   int64 `json:"max_queue"`
}

func (m *soakMetrics) snapshot() soakStreams {
	return soakStreams{
		Opened: m.opened.Load(), Closed: m.closed.Load(), Failed: m.failed.Load(),
		Bounced: m.bounced.Load(), Denied: m.denied.Load(),
		StanzasIn: m.stanzasIn.Load(), StanzasOut: m.stanzasOut.Load(), MaxQueue: m.maxQueue.Load(),
	}
}

// TestSoakTables checks the soak's own tables: marks round-trip, bits
// report a second set, and quantiles land in the right bucket.
func TestSoakTables(t *testing.T) {
	for _, c := range []struct {
		slot uint64
		sent time.Duration
	}{{0, 0}, {42, time.Millisecond}, {1 << 40, time.Hour}} {
		slot, sent, ok := parseMark(mark(c.slot, c.sent))
		if !ok || slot != c.slot || sent != c.sent {
			t.Errorf("parseMark(mark(%d, %v)) = %d, %v, %v", c.slot, c.sent, slot, sent, ok)
		}
	}
	for _, s := range []string{"", "setting up", "soak ", "soak 1", "soak x 2", "soak 1 y"} {
		if _, _, ok := parseMark(s); ok {
			t.Errorf("parseMark(%q) accepted", s)
		}
	}

	b := newBitset(130)
	if b.set(129) || !b.set(129) || !b.has(129) || b.has(128) {
		t.Error("bitset: set twice not reported, or the wrong bit")
	}

	var h histogram
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.quantile(c.q)
		if got < c.want || float64(got) > float64(c.want)*(1+1.0/16) {
			t.Errorf("quantile(%v) = %v, want %v within 1/16 above", c.q, got, c.want)
		}
	}
	for d := time.Duration(0); d < time.Hour; d = d*3/2 + time.Microsecond {
		if b := bucketOf(d); upper(b) < d || (b > 0 && upper(b-1) > d) {
			t.Fatalf("bucketOf(%v) = %d, bounds (%v, %v]", d, b, upper(b-1), upper(b))
		}
	}
	if got := h.summary(); got.Count != 1000 || got.Max != 1000 {
		t.Errorf("summary = %+v", got)
	}
}
