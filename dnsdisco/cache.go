package dnsdisco

import (
	"container/list"
	"time"

	"github.com/miekg/dns"
)

const (
	defaultCacheSize = 4096
	// maxTTL caps how long any answer is kept, whatever its TTL says.
	maxTTL = 24 * time.Hour
	// maxNegTTL caps negative answers; RFC 2308 §5 suggests 1-3 hours.
	maxNegTTL = 3 * time.Hour
	// defaultNegTTL is used for a negative answer without SOA (RFC 2308 §5
	// says such answers SHOULD NOT be cached; a short time stops query storms).
	defaultNegTTL = 30 * time.Second
)

// response is the part of a DNS answer this package uses. It is immutable
// once built and shared between cache and callers.
type response struct {
	rcode  int      // dns.RcodeSuccess or dns.RcodeNameError
	answer []dns.RR // answer section
	secure bool     // AD bit (RFC 6840 §5.8)
	ttl    time.Duration
}

type cacheKey struct {
	name  string // lower-case FQDN
	qtype uint16
}

type cacheEntry struct {
	key     cacheKey
	resp    *response
	expires time.Time
}

// lruCache is a size-bounded LRU cache of responses. It is not safe for
// concurrent use; Resolver guards it with its mutex.
type lruCache struct {
	max   int
	ll    *list.List // front = most recently used
	items map[cacheKey]*list.Element
}

func newLRUCache(max int) *lruCache {
	return &lruCache{max: max, ll: list.New(), items: make(map[cacheKey]*list.Element)}
}

func (c *lruCache) get(k cacheKey, now time.Time) *response {
	el, ok := c.items[k]
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.ll.Remove(el)
		delete(c.items, k)
		return nil
	}
	c.ll.MoveToFront(el)
	return e.resp
}

// fresh reports whether k has an unexpired entry, without touching the
// LRU order.
func (c *lruCache) fresh(k cacheKey, now time.Time) bool {
	el, ok := c.items[k]
	return ok && now.Before(el.Value.(*cacheEntry).expires)
}

func (c *lruCache) put(k cacheKey, r *response, now time.Time) {
	if r.ttl <= 0 {
		return
	}
	exp := now.Add(r.ttl)
	if el, ok := c.items[k]; ok {
		e := el.Value.(*cacheEntry)
		e.resp, e.expires = r, exp
		c.ll.MoveToFront(el)
		return
	}
	c.items[k] = c.ll.PushFront(&cacheEntry{key: k, resp: r, expires: exp})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*cacheEntry).key)
	}
}

func (c *lruCache) len() int { return c.ll.Len() }

// responseTTL computes how long a response may be cached: the minimum TTL
// of the answer RRset (RFC 2181 §5.2: an RRset has one TTL; we take the
// lowest to be safe), capped at maxTTL. For a negative answer (NXDOMAIN or
// NODATA) it is the lower of the SOA's TTL and its MINIMUM field
// (RFC 2308 §5), capped at maxNegTTL, or defaultNegTTL without a SOA.
func responseTTL(m *dns.Msg, answer []dns.RR) time.Duration {
	if len(answer) > 0 {
		min := uint32(1<<32 - 1)
		for _, rr := range answer {
			if t := rr.Header().Ttl; t < min {
				min = t
			}
		}
		return minDur(time.Duration(min)*time.Second, maxTTL)
	}
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			t := min(soa.Hdr.Ttl, soa.Minttl)
			return minDur(time.Duration(t)*time.Second, maxNegTTL)
		}
	}
	return defaultNegTTL
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}
