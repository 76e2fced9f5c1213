// Package faultnet wraps net.Conn and net.Listener with faults a test
// scripts: a connection killed after N bytes or at a moment the test picks
// (both directions at once, with a TCP reset: the remote server died),
// reads or writes that stall (a TLS handshake that never finishes, a peer
// that accepts TCP and never answers), writes that vanish (half-open TCP),
// byte-by-byte delivery, and per-call delays on an injectable clock.
//
// A fault applies to one direction of one connection, as seen from the
// wrapped side: Read is what the wrapped side receives, Write what it
// sends. Wrap the listener of the server under test (Listen or
// WrapListener) to fault the streams it accepts, or dial through a Dialer
// to fault the ones a test peer opens; either way the bytes of both
// directions of the stream pass through one Conn.
//
// Stalled calls honour the connection's deadlines (they return an error
// whose Timeout() is true, as a real socket does) and Close; nothing in
// this package starts a goroutine that outlives the call that started it.
// It is for tests only: it adds a mutex and a few checks to every call.
package faultnet
