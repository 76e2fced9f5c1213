package dnsdisco

import "time"

// SetNow injects a clock for cache-expiry tests.
func SetNow(r *Resolver, now func() time.Time) { r.now = now }

// CacheLen returns the number of cached responses.
func CacheLen(r *Resolver) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cache == nil {
		return 0
	}
	return r.cache.len()
}
