//go:build !linux

package s2s

// hibernationSupported: without epoll an idle stream keeps its reader
// parked in its read.
const hibernationSupported = false

// hibernation holds nothing where streams do not hibernate.
type hibernation struct{}

// park never hibernates a stream here.
func (s *Server) park(*stream) bool { return false }

// wake has nothing to wake here.
func (s *Server) wake(uint64) {}

// count is how many streams hibernate: none here.
func (h *hibernation) count() int { return 0 }

// disabled: always, here.
func (h *hibernation) disabled() bool { return true }
