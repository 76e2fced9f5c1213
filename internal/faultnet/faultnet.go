package faultnet

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"github.com/xmppfed/xmppfed/internal/clock"
)

// Dir is one direction of a Conn, seen from the wrapped side.
type Dir uint8

// Directions.
const (
	// Read is what the wrapped side receives.
	Read Dir = iota
	// Write is what the wrapped side sends.
	Write
)

// String returns "read" or "write".
func (d Dir) String() string {
	if d == Read {
		return "read"
	}
	return "write"
}

// Action is what a direction of a Conn does with its bytes.
type Action uint8

// Actions.
const (
	// Pass lets bytes through unchanged (the zero value).
	Pass Action = iota
	// Stall blocks calls in that direction until the action changes, the
	// Conn is closed or killed, or the direction's deadline passes.
	Stall
	// Blackhole makes the bytes vanish: a Write reports success and sends
	// nothing; a Read consumes what arrives, discards it and keeps
	// waiting. Blackhole on Write plus Stall on Read is a half-open TCP
	// connection whose peer is gone without a reset.
	Blackhole
	// Kill closes the connection at once in both directions with a TCP
	// reset (SO_LINGER 0) when the connection is TCP: the peer sees
	// "connection reset" or EOF, as when the remote host dies.
	Kill
)

// String returns the action's name.
func (a Action) String() string {
	switch a {
	case Pass:
		return "pass"
	case Stall:
		return "stall"
	case Blackhole:
		return "blackhole"
	case Kill:
		return "kill"
	}
	return "action?"
}

// ErrKilled is returned by calls on a Conn after Kill.
var ErrKilled = errors.New("faultnet: connection killed")

// dirState is the fault script of one direction.
type dirState struct {
	action   Action
	after    int64  // bytes left before next applies; <0: no trigger
	next     Action // the action in force once after reaches 0
	chunk    int    // at most this many bytes per call; 0: no limit
	delay    time.Duration
	bytes    int64 // bytes passed so far (Blackhole bytes included)
	deadline time.Time
}

// Conn is a net.Conn with scriptable faults. Its methods are safe for
// concurrent use. The fault setters take effect at once for calls that
// are stalled or delayed, and at the next call otherwise: a Read already
// blocked in the underlying connection returns what arrives first.
type Conn struct {
	net.Conn
	clk clock.Clock

	mu      sync.Mutex
	dirs    [2]dirState
	changed chan struct{} // closed and replaced at every change
	closed  bool
	killed  bool
	done    chan struct{} // closed by Close or Kill
}

// NewConn wraps c with no fault; clk runs the delays (nil: the real
// clock).
func NewConn(c net.Conn, clk clock.Clock) *Conn {
	fc := &Conn{Conn: c, clk: clock.Or(clk), changed: make(chan struct{}), done: make(chan struct{})}
	fc.dirs[Read].after, fc.dirs[Write].after = -1, -1
	return fc
}

// notifyLocked wakes every stalled call to look again; c.mu is held.
func (c *Conn) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Set puts action a in force for direction d now (Kill kills the
// connection at once) and cancels a pending SetAfter trigger of d.
func (c *Conn) Set(d Dir, a Action) {
	if a == Kill {
		c.Kill()
		return
	}
	c.mu.Lock()
	c.dirs[d].action = a
	c.dirs[d].after = -1
	c.notifyLocked()
	c.mu.Unlock()
}

// SetAfter lets n more bytes through direction d with the action now in
// force, then puts a in force: SetAfter(Write, 0, Kill) kills the
// connection at the next write, SetAfter(Read, 100, Stall) stalls reads
// after 100 more bytes. A call that crosses the mark is cut at it: the
// bytes before the mark pass, the rest get a.
func (c *Conn) SetAfter(d Dir, n int64, a Action) {
	c.mu.Lock()
	c.dirs[d].after = max(n, 0)
	c.dirs[d].next = a
	c.notifyLocked()
	c.mu.Unlock()
}

// SetChunk makes each call in direction d move at most n bytes (1: byte by
// byte delivery, each Write split into one-byte writes of the underlying
// connection); 0 removes the limit.
func (c *Conn) SetChunk(d Dir, n int) {
	c.mu.Lock()
	c.dirs[d].chunk = max(n, 0)
	c.mu.Unlock()
}

// SetDelay makes each call in direction d wait dl on the Conn's clock
// before it moves any byte (with a clock.Fake, until the test advances
// it); 0 removes the delay. A delayed call still ends at Close, Kill or
// its deadline.
func (c *Conn) SetDelay(d Dir, dl time.Duration) {
	c.mu.Lock()
	c.dirs[d].delay = max(dl, 0)
	c.notifyLocked()
	c.mu.Unlock()
}

// Bytes reports how many bytes have passed in direction d (bytes that
// vanished in a Blackhole included).
func (c *Conn) Bytes(d Dir) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dirs[d].bytes
}

// Killed reports whether the connection was killed.
func (c *Conn) Killed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.killed
}

// Kill closes the connection in both directions at once, with a TCP reset
// when the underlying connection is TCP; every pending and later call
// returns ErrKilled (wrapped in a *net.OpError).
func (c *Conn) Kill() {
	c.mu.Lock()
	if c.killed || c.closed {
		c.mu.Unlock()
		return
	}
	c.killed = true
	close(c.done)
	c.notifyLocked()
	c.mu.Unlock()
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Conn.Close()
}

// Close closes the connection; stalled calls return net.ErrClosed.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed || c.killed {
		c.mu.Unlock()
		return c.Conn.Close()
	}
	c.closed = true
	close(c.done)
	c.notifyLocked()
	c.mu.Unlock()
	return c.Conn.Close()
}

// SetDeadline sets both deadlines, on the underlying connection and for
// stalled calls.
func (c *Conn) SetDeadline(t time.Time) error {
	c.setDeadline(Read, t)
	c.setDeadline(Write, t)
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline sets the read deadline, on the underlying connection and
// for stalled reads.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.setDeadline(Read, t)
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline, on the underlying connection
// and for stalled writes.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.setDeadline(Write, t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *Conn) setDeadline(d Dir, t time.Time) {
	c.mu.Lock()
	c.dirs[d].deadline = t
	c.notifyLocked()
	c.mu.Unlock()
}

// opErr wraps err the way the net package reports errors.
func (c *Conn) opErr(d Dir, err error) error {
	op := "read"
	if d == Write {
		op = "write"
	}
	return &net.OpError{Op: op, Net: "faultnet", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// gate waits until direction d may move bytes and returns the action in
// force and how many bytes the call may move (at most want). It returns
// an error when the Conn was closed or killed or the deadline passed.
func (c *Conn) gate(d Dir, want int) (Action, int, error) {
	delayed := false
	for {
		c.mu.Lock()
		st := &c.dirs[d]
		if c.killed {
			c.mu.Unlock()
			return 0, 0, c.opErr(d, ErrKilled)
		}
		if c.closed {
			c.mu.Unlock()
			return 0, 0, c.opErr(d, net.ErrClosed)
		}
		if st.after == 0 {
			st.action, st.after = st.next, -1
			if st.action == Kill {
				c.mu.Unlock()
				c.Kill()
				return 0, 0, c.opErr(d, ErrKilled)
			}
		}
		dl, wait := st.deadline, c.changed
		if !dl.IsZero() && !time.Now().Before(dl) && (st.action == Stall || (st.delay > 0 && !delayed)) {
			c.mu.Unlock()
			return 0, 0, c.opErr(d, os.ErrDeadlineExceeded)
		}
		if st.delay > 0 && !delayed {
			dur := st.delay
			c.mu.Unlock()
			if err := c.sleep(d, dur, dl); err != nil {
				return 0, 0, err
			}
			delayed = true
			continue
		}
		if st.action != Stall {
			n := want
			if st.chunk > 0 {
				n = min(n, st.chunk)
			}
			if st.after > 0 {
				n = int(min(int64(n), st.after))
			}
			a := st.action
			c.mu.Unlock()
			return a, n, nil
		}
		c.mu.Unlock()
		if err := c.wait(d, dl, wait); err != nil {
			return 0, 0, err
		}
	}
}

// wait blocks until the Conn's state changes or the deadline dl passes.
func (c *Conn) wait(d Dir, dl time.Time, changed <-chan struct{}) error {
	if dl.IsZero() {
		<-changed
		return nil
	}
	t := time.NewTimer(time.Until(dl))
	defer t.Stop()
	select {
	case <-changed:
		return nil
	case <-t.C:
		return c.opErr(d, os.ErrDeadlineExceeded)
	}
}

// sleep waits dur on the Conn's clock, or until the Conn is closed or
// killed or the deadline dl passes.
func (c *Conn) sleep(d Dir, dur time.Duration, dl time.Time) error {
	fired := make(chan struct{})
	tm := c.clk.AfterFunc(dur, func() { close(fired) })
	defer tm.Stop()
	var dlc <-chan time.Time
	if !dl.IsZero() {
		t := time.NewTimer(time.Until(dl))
		defer t.Stop()
		dlc = t.C
	}
	select {
	case <-fired:
		return nil
	case <-c.done:
		return c.opErr(d, net.ErrClosed)
	case <-dlc:
		return c.opErr(d, os.ErrDeadlineExceeded)
	}
}

// account records n bytes moved in direction d and fires a SetAfter
// trigger whose mark they reach (a Kill at once, not at the next call).
func (c *Conn) account(d Dir, n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	st := &c.dirs[d]
	st.bytes += int64(n)
	kill := false
	if st.after > 0 {
		st.after = max(st.after-int64(n), 0)
		if st.after == 0 {
			st.action, st.after = st.next, -1
			kill = st.action == Kill
			c.notifyLocked()
		}
	}
	c.mu.Unlock()
	if kill {
		c.Kill()
	}
}

// Read reads from the underlying connection through the Read faults.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return c.Conn.Read(p)
	}
	for {
		a, n, err := c.gate(Read, len(p))
		if err != nil {
			return 0, err
		}
		m, err := c.Conn.Read(p[:n])
		c.account(Read, m)
		if a == Blackhole {
			if err != nil {
				return 0, c.killedErr(Read, err)
			}
			continue
		}
		if err != nil {
			err = c.killedErr(Read, err)
		}
		return m, err
	}
}

// Write writes to the underlying connection through the Write faults. A
// write cut by a trigger or a chunk limit is finished in several steps, so
// that only a fault (never the chunking) makes it short.
func (c *Conn) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		a, n, err := c.gate(Write, len(p)-done)
		if err != nil {
			return done, err
		}
		if a == Blackhole {
			c.account(Write, n)
			done += n
			continue
		}
		m, err := c.Conn.Write(p[done : done+n])
		c.account(Write, m)
		done += m
		if err != nil {
			return done, c.killedErr(Write, err)
		}
	}
	return done, nil
}

// killedErr turns the error of a call on a killed connection into
// ErrKilled, so the caller sees why.
func (c *Conn) killedErr(d Dir, err error) error {
	c.mu.Lock()
	k := c.killed
	c.mu.Unlock()
	if k && !errors.Is(err, ErrKilled) {
		return c.opErr(d, ErrKilled)
	}
	return err
}

// Listener wraps a net.Listener: every accepted connection is a *Conn,
// given to the setup function (if any) before Accept returns it.
type Listener struct {
	net.Listener
	clk clock.Clock

	mu    sync.Mutex
	setup func(*Conn)
	conns []*Conn
	ch    chan *Conn // accepted connections not yet taken by Next
}

// Listen listens on a loopback address (network "tcp", address like
// "127.0.0.1:0") and wraps the listener; setup may be nil.
func Listen(network, address string, setup func(*Conn)) (*Listener, error) {
	l, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	return WrapListener(l, nil, setup), nil
}

// WrapListener wraps l; clk runs the delays of its connections (nil: the
// real clock); setup may be nil.
func WrapListener(l net.Listener, clk clock.Clock, setup func(*Conn)) *Listener {
	return &Listener{Listener: l, clk: clk, setup: setup, ch: make(chan *Conn, 64)}
}

// SetSetup replaces the function applied to connections accepted from
// now on (nil: none, the fault cleared for new connections).
func (l *Listener) SetSetup(setup func(*Conn)) {
	l.mu.Lock()
	l.setup = setup
	l.mu.Unlock()
}

// Accept accepts the next connection and applies the setup function.
func (l *Listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := NewConn(nc, l.clk)
	l.mu.Lock()
	setup := l.setup
	l.conns = append(l.conns, c)
	l.mu.Unlock()
	if setup != nil {
		setup(c)
	}
	select {
	case l.ch <- c:
	default: // nobody is keeping up: Conns still has it
	}
	return c, nil
}

// Conns returns every connection accepted so far, in order.
func (l *Listener) Conns() []*Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Conn(nil), l.conns...)
}

// Next returns the oldest accepted connection not yet returned by Next
// (the first 64 waiting are kept; Conns has them all), waiting for one
// or for ctx to end.
func (l *Listener) Next(ctx context.Context) (*Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// KillAll kills every connection accepted so far: the server behind the
// listener dies as seen by all its peers (the listener itself stays open,
// as a restarted server would be).
func (l *Listener) KillAll() {
	for _, c := range l.Conns() {
		c.Kill()
	}
}

// Dialer dials connections wrapped with faults.
type Dialer struct {
	// Dialer dials the underlying connection.
	Dialer net.Dialer
	// Clock runs the delays (nil: the real clock).
	Clock clock.Clock
	// Setup, if set, is applied to each connection before DialContext
	// returns it.
	Setup func(*Conn)
}

// DialContext dials address and wraps the connection.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	nc, err := d.Dialer.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	c := NewConn(nc, d.Clock)
	if d.Setup != nil {
		d.Setup(c)
	}
	return c, nil
}
