package s2s

import (
	"container/heap"
	"context"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"
)

// Resend deduplication (XEP-0198 §4, §5). A sender that loses a stream
// sends the stanzas we had not acknowledged again on a new stream; the
// ones we had handled already must not reach the Handler twice. The
// Server keeps, per remote domain, the keys of the stanzas it handled
// lately that the peer may resend (the last dedupeMax, for at most
// dedupeAge on the Server's clock, and no more than dedupeTotal over all
// domains), and drops a stanza whose key was recorded on ANOTHER stream.
// The trade-offs are in doc.go ("Resends").
//
// Locking: dedupeState.mu guards the map of domains only; each domain's
// ring has its own mutex, so streams of different domains check their
// stanzas in parallel. The order is dedupeState.mu, then a ring's mu; the
// per-stanza path never holds both, and finds its domain's ring through
// its read loop's cache (dedupeCache) without the map while it is the
// same domain. A sweep runs every dedupeSweep checks of one domain, and
// whenever the total passes dedupeTotal by dedupeSweep.
const (
	dedupeMax   = 4096            // keys kept per remote domain
	dedupeTotal = 1 << 17         // keys kept over all domains (about 7 MB)
	dedupeAge   = 5 * time.Minute // how long a key is kept (a few maxRetry-scale reconnects)
	dedupeSweep = 1024            // a domain's checks between sweeps (and the total's slack)
)

// dedupeState is the Server's record of recently handled stanzas; the
// Server embeds it (field dedupe). The zero value is ready.
type dedupeState struct {
	once  sync.Once
	seed  maphash.Seed           // set once; read without a lock after
	mu    sync.RWMutex           // guards peers
	peers map[string]*dedupeRing // remote domain -> its recent keys
	// entries counts the keys recorded over all domains, so that the
	// check is one atomic load while nothing is recorded.
	entries atomic.Int64
	drops   atomic.Uint64 // resent stanzas dropped
}

// dedupeEntry is one handled stanza: the hash of its key, the hash of the
// stream it arrived on, and when (Unix nanoseconds on the Server's clock).
type dedupeEntry struct {
	key, stream uint64
	at          int64
}

// dedupeRing is the recent keys of one remote domain, oldest first, in a
// ring that grows up to dedupeMax entries as needed (a domain that sent
// ten stanzas keeps ten) and shrinks again when they age.
type dedupeRing struct {
	mu    sync.Mutex
	gone  bool             // swept out of the map: look the domain up again
	ops   uint32           // checks, for the sweeps
	ents  []dedupeEntry    // len is the ring's capacity
	start int              // the oldest entry
	n     int              // entries in use
	idx   map[uint64]int32 // key -> position of its newest entry
}

// dedupeCache is a read loop's shortcut to the record of the domain its
// stanzas come from, and the hash of its stream's id: runState.dd, owned by
// the read loop (no locking), dropped with rt.addrs when the stream
// hibernates.
type dedupeCache struct {
	dom  string
	ring *dedupeRing
	sid  uint64
}

// resent reports whether stz, received on st, is a resend of a stanza
// already handled on another stream from the same domain, and records it
// otherwise when the peer may resend it: only stanzas counted for
// XEP-0198 acknowledgements (rt.smEnabled or rt.smIn, the flags the read
// loop counts h under) can come again. A stanza without an id is never a resend
// (nothing tells two of them apart). A dropped stanza is logged at Debug
// and counted. While nothing is recorded (no stream with XEP-0198 in the
// last dedupeAge) the check costs an atomic load. Only st's read loop
// calls it (it uses rt.dd).
func (s *Server) resent(st *stream, stz *Stanza) bool {
	if stz.ID == "" {
		return false
	}
	rt := st.rt
	rt.mu.Lock()
	counted := rt.smEnabled || rt.smIn
	rt.mu.Unlock()
	d := &s.dedupe
	if !counted && d.entries.Load() == 0 {
		return false
	}
	d.once.Do(func() { d.seed = maphash.MakeSeed() })
	c := rt.dd
	if c == nil {
		c = &dedupeCache{sid: maphash.String(d.seed, st.id)}
		rt.dd = c
	}
	var r *dedupeRing
	if c.ring != nil && c.dom == stz.srcDomain {
		r = c.ring
		r.mu.Lock()
		if r.gone {
			r.mu.Unlock()
			r = nil
		}
	}
	if r == nil {
		if r = d.lock(stz.srcDomain, counted); r == nil {
			return false // nothing recorded for this domain, nothing to record
		}
		c.dom, c.ring = stz.srcDomain, r
	}
	now := s.clock.Now().UnixNano()
	old := now - int64(dedupeAge)
	grown := d.expire(r, old)
	key := d.key(stz)
	i, ok := r.idx[key]
	dup := ok && r.ents[i].stream != c.sid
	if !dup && counted {
		n := r.n
		r.push(dedupeEntry{key: key, stream: c.sid, at: now})
		grown += int64(r.n - n)
	}
	r.ops++
	sweep := r.ops%dedupeSweep == 0
	r.mu.Unlock()
	// The count is shared by every stream: touched only when it changes
	// (a full ring evicts as it records).
	if grown != 0 && d.entries.Add(grown) > dedupeTotal+dedupeSweep {
		sweep = true
	}
	if sweep {
		d.sweep(old)
	}
	if dup {
		d.drops.Add(1)
		s.log.LogAttrs(context.Background(), slog.LevelDebug, "s2s resent stanza dropped: handled already on another stream",
			slog.String("from", stz.From.String()), slog.String("to", stz.To.String()),
			slog.String("kind", stz.Kind), slog.String("id", stz.ID), slog.String("remote", st.remote))
	}
	return dup
}

// lock returns dom's ring locked, creating it if create is set; nil when
// dom has none and create is not set.
func (d *dedupeState) lock(dom string, create bool) *dedupeRing {
	for {
		d.mu.RLock()
		r := d.peers[dom]
		d.mu.RUnlock()
		if r == nil {
			if !create {
				return nil
			}
			d.mu.Lock()
			if d.peers == nil {
				d.peers = make(map[string]*dedupeRing)
			}
			if r = d.peers[dom]; r == nil {
				r = &dedupeRing{idx: make(map[uint64]int32)}
				d.peers[dom] = r
			}
			d.mu.Unlock()
		}
		r.mu.Lock()
		if !r.gone {
			return r
		}
		r.mu.Unlock() // a sweep removed it between the lookup and the lock
	}
}

// sweep drops the entries recorded before the Unix nanosecond before,
// forgets the domains left with none, and, when more than dedupeTotal keys
// remain over all domains, evicts the oldest of them whichever domain
// holds them: a busy domain keeps more keys than a quiet one, as it has
// more stanzas in flight to lose.
// One sweep at a time: a check that finds one running goes on without.
func (d *dedupeState) sweep(before int64) {
	if !d.mu.TryLock() {
		return
	}
	defer d.mu.Unlock()
	var h ringHeap
	for dom, r := range d.peers {
		r.mu.Lock()
		d.entries.Add(d.expire(r, before))
		if r.n == 0 {
			r.gone = true
			delete(d.peers, dom)
		} else {
			h = append(h, ringHead{r: r, at: r.ents[r.start].at})
		}
		r.mu.Unlock()
	}
	if d.entries.Load() <= dedupeTotal {
		return
	}
	// New domains cannot appear while d.mu is held; the rings' own
	// checks go on, and only ever add newer entries or expire old ones,
	// so a head read here is at worst older than the ring's real one.
	heap.Init(&h)
	for h.Len() > 0 && d.entries.Load() > dedupeTotal {
		r := h[0].r
		r.mu.Lock()
		if r.n > 0 {
			r.evictOldest()
			d.entries.Add(-1)
		}
		if r.n > 0 {
			h[0].at = r.ents[r.start].at
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
		r.shrink()
		r.mu.Unlock()
	}
}

// ringHead is a ring and the time of its oldest entry, for sweep's heap.
type ringHead struct {
	r  *dedupeRing
	at int64
}

// ringHeap orders rings by their oldest entry (container/heap).
type ringHeap []ringHead

func (h ringHeap) Len() int           { return len(h) }
func (h ringHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h ringHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *ringHeap) Push(x any)        { *h = append(*h, x.(ringHead)) }
func (h *ringHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// expire drops r's entries recorded before the Unix nanosecond before and
// returns the change in their number, for d.entries (r.mu is held).
func (d *dedupeState) expire(r *dedupeRing, before int64) int64 {
	n := r.n
	r.expire(before)
	return int64(r.n - n)
}

// key hashes what identifies a stanza across streams: kind, whether it is
// an error, from, to and id.
func (d *dedupeState) key(stz *Stanza) uint64 {
	var h maphash.Hash
	h.SetSeed(d.seed)
	_, _ = h.WriteString(stz.Kind)
	if stz.isError() {
		_ = h.WriteByte(1)
	} else {
		_ = h.WriteByte(0)
	}
	for _, j := range [2]jid.JID{stz.From, stz.To} {
		// The parts, not String(), which would allocate per stanza;
		// the separators keep "a@b" + "c" apart from "a" + "b@c".
		_, _ = h.WriteString(j.Localpart())
		_ = h.WriteByte('@')
		_, _ = h.WriteString(j.Domainpart())
		_ = h.WriteByte('/')
		_, _ = h.WriteString(j.Resourcepart())
		_ = h.WriteByte(0)
	}
	_, _ = h.WriteString(stz.ID)
	return h.Sum64()
}

// expire drops the entries recorded before the Unix nanosecond before.
func (r *dedupeRing) expire(before int64) {
	n := r.n
	for r.n > 0 && r.ents[r.start].at < before {
		r.evictOldest()
	}
	if r.n != n {
		r.shrink()
	}
}

// shrink gives back the memory of a burst long gone: a ring using a
// quarter of its array or less moves to one twice its size, with a new
// index (a Go map never shrinks).
func (r *dedupeRing) shrink() {
	if len(r.ents) > 64 && r.n <= len(r.ents)/4 {
		r.resize(max(2*r.n, 16))
	}
}

// evictOldest removes the oldest entry.
func (r *dedupeRing) evictOldest() {
	e := r.ents[r.start]
	if i, ok := r.idx[e.key]; ok && int(i) == r.start {
		delete(r.idx, e.key)
	}
	r.start = (r.start + 1) % len(r.ents)
	r.n--
}

// resize moves the entries, oldest first, to a new array of size slots
// (size >= r.n) and rebuilds the index.
func (r *dedupeRing) resize(size int) {
	ents := make([]dedupeEntry, size)
	idx := make(map[uint64]int32, r.n)
	for i := range r.n {
		ents[i] = r.ents[(r.start+i)%len(r.ents)]
		idx[ents[i].key] = int32(i) // a later (newer) entry overwrites
	}
	r.ents, r.start, r.idx = ents, 0, idx
}

// push records e as the newest entry, evicting the oldest when full and
// growing the ring (up to dedupeMax) otherwise.
func (r *dedupeRing) push(e dedupeEntry) {
	if r.n == dedupeMax {
		r.evictOldest()
	}
	if r.n == len(r.ents) {
		r.resize(min(max(2*len(r.ents), 16), dedupeMax))
	}
	pos := (r.start + r.n) % len(r.ents)
	r.ents[pos] = e
	r.idx[e.key] = int32(pos)
	r.n++
}
