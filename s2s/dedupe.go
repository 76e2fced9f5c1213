package s2s

import (
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
// dedupeAge on the Server's clock), and drops a stanza whose key was
// recorded on ANOTHER stream.
// The trade-offs are in doc.go ("Resends").
const (
	dedupeMax   = 4096            // keys kept per remote domain
	dedupeAge   = 5 * time.Minute // how long a key is kept (a few maxRetry-scale reconnects)
	dedupeSweep = 1024            // checks between sweeps of idle domains
)

// dedupeState is the Server's record of recently handled stanzas; the
// Server embeds it (field dedupe). The zero value is ready.
type dedupeState struct {
	mu    sync.Mutex
	seed  maphash.Seed
	init  bool
	peers map[string]*dedupeRing // remote domain -> its recent keys
	ops   int                    // checks since the last sweep
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
// ten stanzas keeps ten).
type dedupeRing struct {
	ents  []dedupeEntry
	start int              // the oldest entry
	n     int              // entries in use
	idx   map[uint64]int32 // key -> position of its newest entry
}

// resent reports whether stz, received on st, is a resend of a stanza
// already handled on another stream from the same domain, and records it
// otherwise when the peer may resend it: only stanzas counted for
// XEP-0198 acknowledgements (rt.smEnabled or rt.smIn, the flags the read
// loop counts h under) can come again. A stanza without an id is never a resend
// (nothing tells two of them apart). A dropped stanza is logged at Debug
// and counted. While nothing is recorded (no stream with XEP-0198 in the
// last dedupeAge) the check costs an atomic load.
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
	now := s.clock.Now().UnixNano()
	old := now - int64(dedupeAge)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.init {
		d.seed, d.init = maphash.MakeSeed(), true
		d.peers = make(map[string]*dedupeRing)
	}
	if d.ops++; d.ops >= dedupeSweep {
		d.ops = 0
		for dom, pr := range d.peers {
			if d.expire(pr, old); pr.n == 0 {
				delete(d.peers, dom)
			}
		}
	}
	r := d.peers[stz.srcDomain]
	if r == nil {
		if !counted {
			return false
		}
		r = &dedupeRing{idx: make(map[uint64]int32)}
		d.peers[stz.srcDomain] = r
	}
	d.expire(r, old)
	key := d.key(stz)
	sid := maphash.String(d.seed, st.id)
	if i, ok := r.idx[key]; ok && r.ents[i].stream != sid {
		d.drops.Add(1)
		s.log.LogAttrs(context.Background(), slog.LevelDebug, "s2s resent stanza dropped: handled already on another stream",
			slog.String("from", stz.From.String()), slog.String("to", stz.To.String()),
			slog.String("kind", stz.Kind), slog.String("id", stz.ID), slog.String("remote", st.remote))
		return true
	}
	if counted {
		n := r.n
		r.push(dedupeEntry{key: key, stream: sid, at: now})
		d.entries.Add(int64(r.n - n))
	}
	return false
}

// expire drops r's entries recorded before the Unix nanosecond before and
// keeps the total count (d.mu is held).
func (d *dedupeState) expire(r *dedupeRing, before int64) {
	n := r.n
	r.expire(before)
	d.entries.Add(int64(r.n - n))
}

// key hashes what identifies a stanza across streams: kind, whether it is
// an error, from, to and id (d.mu is held).
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
	for r.n > 0 && r.ents[r.start].at < before {
		r.evictOldest()
	}
	if r.n == 0 && cap(r.ents) > 64 {
		r.ents, r.start = nil, 0 // a burst long gone: give its array back
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

// push records e as the newest entry, evicting the oldest when full and
// growing the ring (up to dedupeMax) otherwise.
func (r *dedupeRing) push(e dedupeEntry) {
	if r.n == dedupeMax {
		r.evictOldest()
	}
	if r.n == len(r.ents) {
		grown := make([]dedupeEntry, min(max(2*len(r.ents), 16), dedupeMax))
		for i := range r.n {
			pos := (r.start + i) % len(r.ents)
			grown[i] = r.ents[pos]
			if j, ok := r.idx[grown[i].key]; ok && int(j) == pos {
				r.idx[grown[i].key] = int32(i)
			}
		}
		r.ents, r.start = grown, 0
	}
	pos := (r.start + r.n) % len(r.ents)
	r.ents[pos] = e
	r.idx[e.key] = int32(pos)
	r.n++
}
