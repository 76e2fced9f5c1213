package translate

import "github.com/xmppfed/xmppfed/internal/clock"

// SetClock makes t tell the time from c; call it before t is first used.
func SetClock(t *Translator, c clock.Clock) {
	t.st.mu.Lock()
	defer t.st.mu.Unlock()
	t.st.clock = c
}

// SetMaxPairs bounds t's conversation and refresh maps at n entries instead
// of 100000; call it before t is first used.
func SetMaxPairs(t *Translator, n int) {
	t.st.mu.Lock()
	defer t.st.mu.Unlock()
	t.st.maxPairs = n
}

// Sizes returns how many entries t's conversation and refresh maps hold,
// and how many pair locks are live.
func Sizes(t *Translator) (convs, refreshed, locks int) {
	t.st.mu.Lock()
	defer t.st.mu.Unlock()
	return t.st.convs.len(), t.st.refreshed.len(), len(t.st.locks)
}

// Rank is the aggregation's availability order (lower is more available).
func Rank(a Availability) int { return availabilityRank(a) }
