package s2s

// HibernationSupported reports whether idle streams hibernate on this OS.
const HibernationSupported = hibernationSupported

// HibernateAfter is how long a stream receives nothing before it
// hibernates (on the Server's clock).
const HibernateAfter = hibernateAfter

// Hibernated reports how many of s's streams hibernate (no reader
// goroutine).
func Hibernated(s *Server) int { return s.hib.count() }
