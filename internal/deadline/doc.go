// Package deadline makes the end of a context cut blocking I/O on a
// connection, by setting the connection's deadline in the past.
//
// The obvious way, a goroutine selecting between ctx.Done and "the
// operation is over", has a race: when both are ready the select picks
// one at random, so a context cancelled after the operation succeeded
// can still set a deadline in the past on a connection now in other
// hands, whose next read or write then fails with a timeout (and a TLS
// connection's writes stay failed). mellium.im/xmpp v0.22.0 has this
// race. Watch's stop instead returns only once no deadline from the watch
// can be set any more, and reports whether it fired, so the caller
// clears the deadline, or sets its own, after it.
package deadline
