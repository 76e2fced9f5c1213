package s2s

import "github.com/xmppfed/xmppfed/internal/clock"

// SetClock makes s run its timers on c; call it before first use.
func SetClock(s *Server, c clock.Clock) { s.clock = c }

// PoolState reports how many (local, remote) pairs the pool holds and how
// many of them have an attempt running.
func PoolState(s *Server) (pairs, dialing int) {
	ops := s.pairSnapshot()
	for _, op := range ops {
		op.mu.Lock()
		if op.dialing {
			dialing++
		}
		op.mu.Unlock()
	}
	return len(ops), dialing
}
