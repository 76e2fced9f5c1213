package s2s

import "github.com/xmppfed/xmppfed/internal/clock"

// SetClock makes s run its timers on c; call it before first use.
func SetClock(s *Server, c clock.Clock) { s.clock = c }
