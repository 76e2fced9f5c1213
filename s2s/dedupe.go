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
// lately (the last dedupeMax, for at most dedupeAge on the Server's
// clock), and drops a stanza whose key was recorded on ANOTHER stream.
// The trade-offs are in doc.go ("Resends").
const (
	dedupeMax   = 4096            // keys kept per remote domain
	dedupeAge   = 5 * time.Minute // how long a key is kept (a few maxRetry-scale reconnects)
	dedupeSweep = 1024            // records between sweeps of idle domains
)

// dedupeState is the Server's record of recently handled stanzas; the
// Server embeds it (field dedupe). The zero value is ready.
type dedupeState struct {
	mu    sync.Mutex
	seed  maphash.Seed
	init  bool
	peers map[string]*dedupeRing // remote domain -> its recent keys
	ops   int                    // records since the last sweep
	drops atomic.Uint64          // resent stanzas dropped
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
// otherwise. A stanza without an id is never a resend (nothing tells two
// of them apart). A dropped stanza is logged at Debug and counted.
func (s *Server) resent(st *stream, stz *Stanza) bool {
	if stz.ID == "" {
		return false
	}
	d := &s.dedupe
	now := s.clock.Now().UnixNano()
	d.mu.Lock()
	if !d.init {
		d.seed, d.init = maphash.MakeSeed(), true
		d.peers = make(map[string]*dedupeRing)
	}
	key := d.key(stz)
	sid := maphash.String(d.seed, st.id)
	r := d.peers[stz.srcDomain]
	if r == nil {
		r = &dedupeRing{idx: make(map[uint64]int32)}
		d.peers[stz.srcDomain] = r
	}
	old := now - int64(dedupeAge)
	r.expire(old)
	if i, ok := r.idx[key]; ok && r.ents[i].stream != sid {
		d.mu.Unlock()
		d.drops.Add(1)
		s.log.LogAttrs(context.Background(), slog.LevelDebug, "s2s resent stanza dropped: handled already on another stream",
			slog.String("from", stz.From.String()), slog.String("to", stz.To.String()),
			slog.String("kind", stz.Kind), slog.String("id", stz.ID), slog.String("remote", st.remote))
		return true
	}
	r.push(dedupeEntry{key: key, stream: sid, at: now})
	if d.ops++; d.ops >= dedupeSweep {
		d.ops = 0
		for dom, pr := range d.peers {
			if pr.expire(old); pr.n == 0 {
				delete(d.peers, dom)
			}
		}
	}
	d.mu.Unlock()
	return false
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
