package faultnet_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xmppfed/xmppfed/internal/clock"
	"github.com/xmppfed/xmppfed/internal/faultnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hang bounds every wait: a guard against a hang, never a timing
// assertion.
const hang = 10 * time.Second

// pair returns a faulted server side (accepted through a faultnet
// Listener) and the plain client side of one loopback TCP connection.
func pair(t *testing.T, clk clock.Clock, setup func(*faultnet.Conn)) (*faultnet.Conn, net.Conn) {
	t.Helper()
	nl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := faultnet.WrapListener(nl, clk, setup)
	t.Cleanup(func() { _ = l.Close() })
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	sc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sc.Close() })
	fc, ok := sc.(*faultnet.Conn)
	if !ok {
		t.Fatalf("Accept returned %T", sc)
	}
	if got := l.Conns(); len(got) != 1 || got[0] != fc {
		t.Fatalf("Conns = %v", got)
	}
	return fc, client
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestPassThrough(t *testing.T) {
	fc, client := pair(t, nil, nil)
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(fc, b); err != nil || string(b) != "hello" {
		t.Fatalf("read %q, %v", b, err)
	}
	if _, err := fc.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(client, b); err != nil || string(b) != "world" {
		t.Fatalf("read %q, %v", b, err)
	}
	if fc.Bytes(faultnet.Read) != 5 || fc.Bytes(faultnet.Write) != 5 {
		t.Errorf("Bytes = %d, %d", fc.Bytes(faultnet.Read), fc.Bytes(faultnet.Write))
	}
}

// TestKillAfterWrite: the connection dies with a reset once exactly n
// bytes have been written; the peer reads those n bytes and then an error.
func TestKillAfterWrite(t *testing.T) {
	fc, client := pair(t, nil, func(c *faultnet.Conn) { c.SetAfter(faultnet.Write, 7, faultnet.Kill) })
	n, err := fc.Write([]byte("0123456789"))
	if n != 7 || !errors.Is(err, faultnet.ErrKilled) {
		t.Fatalf("Write = %d, %v; want 7, ErrKilled", n, err)
	}
	if !fc.Killed() {
		t.Error("Killed() = false")
	}
	_ = client.SetReadDeadline(time.Now().Add(hang))
	got, err := io.ReadAll(client)
	if string(got) != "0123456" {
		t.Errorf("peer read %q", got)
	}
	// io.ReadAll hides EOF and a reset is an error: either way the peer
	// learns of the end, it never waits for more.
	if isTimeout(err) {
		t.Fatalf("peer read timed out: the connection was not closed")
	}
	if _, err := fc.Read(make([]byte, 1)); !errors.Is(err, faultnet.ErrKilled) {
		t.Errorf("Read after kill = %v", err)
	}
}

// TestKillAfterRead: reads deliver exactly n bytes, then the connection is
// killed.
func TestKillAfterRead(t *testing.T) {
	fc, client := pair(t, nil, func(c *faultnet.Conn) { c.SetAfter(faultnet.Read, 3, faultnet.Kill) })
	if _, err := client.Write([]byte("abcdef")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 10)
	n, err := fc.Read(b)
	if n != 3 || err != nil || string(b[:n]) != "abc" {
		t.Fatalf("Read = %q, %v", b[:n], err)
	}
	if _, err := fc.Read(b); !errors.Is(err, faultnet.ErrKilled) {
		t.Fatalf("second Read = %v, want ErrKilled", err)
	}
}

// TestStallHonoursDeadlineAndClears: a stalled read ends at its deadline
// with a timeout error, and a stall cleared lets the data through.
func TestStallHonoursDeadlineAndClears(t *testing.T) {
	fc, client := pair(t, nil, func(c *faultnet.Conn) { c.Set(faultnet.Read, faultnet.Stall) })
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	_ = fc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := fc.Read(make([]byte, 1)); !isTimeout(err) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("stalled Read = %v, want a timeout", err)
	}
	_ = fc.SetReadDeadline(time.Time{})
	got := make(chan error, 1)
	go func() {
		b := make([]byte, 1)
		_, err := fc.Read(b)
		if err == nil && b[0] != 'x' {
			err = errors.New("wrong byte " + string(b))
		}
		got <- err
	}()
	fc.Set(faultnet.Read, faultnet.Pass)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(hang):
		t.Fatal("read still stalled after the stall cleared")
	}
}

// TestStallEndsAtClose: Close wakes a stalled write.
func TestStallEndsAtClose(t *testing.T) {
	fc, _ := pair(t, nil, func(c *faultnet.Conn) { c.Set(faultnet.Write, faultnet.Stall) })
	got := make(chan error, 1)
	go func() {
		_, err := fc.Write([]byte("x"))
		got <- err
	}()
	_ = fc.Close()
	select {
	case err := <-got:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Write = %v, want net.ErrClosed", err)
		}
	case <-time.After(hang):
		t.Fatal("write still stalled after Close")
	}
}

// TestHalfOpen: writes report success but the peer receives nothing; the
// peer's bytes are swallowed too.
func TestHalfOpen(t *testing.T) {
	fc, client := pair(t, nil, func(c *faultnet.Conn) {
		c.Set(faultnet.Write, faultnet.Blackhole)
		c.Set(faultnet.Read, faultnet.Blackhole)
	})
	if n, err := fc.Write([]byte("lost")); n != 4 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if _, err := client.Write([]byte("also lost")); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if n, err := client.Read(make([]byte, 4)); !isTimeout(err) {
		t.Fatalf("peer Read = %d, %v, want a timeout", n, err)
	}
	_ = fc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := fc.Read(make([]byte, 16)); n != 0 || !isTimeout(err) {
		t.Fatalf("Read = %d, %v, want a timeout", n, err)
	}
	if fc.Bytes(faultnet.Write) != 4 || fc.Bytes(faultnet.Read) != 9 {
		t.Errorf("Bytes = %d, %d", fc.Bytes(faultnet.Read), fc.Bytes(faultnet.Write))
	}
}

// TestByteByByte: each Read returns one byte; a Write is sent one byte at
// a time but reports the whole length.
func TestByteByByte(t *testing.T) {
	fc, client := pair(t, nil, func(c *faultnet.Conn) {
		c.SetChunk(faultnet.Read, 1)
		c.SetChunk(faultnet.Write, 1)
	})
	if _, err := client.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 10)
	for _, want := range "abc" {
		n, err := fc.Read(b)
		if n != 1 || err != nil || rune(b[0]) != want {
			t.Fatalf("Read = %q, %v", b[:n], err)
		}
	}
	if n, err := fc.Write([]byte("xyz")); n != 3 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if _, err := io.ReadFull(client, b[:3]); err != nil || string(b[:3]) != "xyz" {
		t.Fatalf("peer read %q, %v", b[:3], err)
	}
}

// TestDelayOnFakeClock: a delayed write waits for the fake clock.
func TestDelayOnFakeClock(t *testing.T) {
	clk := clock.NewFake(time.Unix(1e9, 0))
	fc, client := pair(t, clk, func(c *faultnet.Conn) { c.SetDelay(faultnet.Write, time.Minute) })
	got := make(chan error, 1)
	go func() {
		_, err := fc.Write([]byte("late"))
		got <- err
	}()
	for i := 0; clk.Pending() == 0; i++ {
		if i > 10000 {
			t.Fatal("the delayed write armed no timer")
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-got:
		t.Fatalf("write finished before the clock moved: %v", err)
	default:
	}
	clk.Advance(time.Minute)
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(hang):
		t.Fatal("write still delayed after the clock moved")
	}
	b := make([]byte, 4)
	_ = client.SetReadDeadline(time.Now().Add(hang))
	if _, err := io.ReadFull(client, b); err != nil || string(b) != "late" {
		t.Fatalf("peer read %q, %v", b, err)
	}
}

// TestListenerKillAllAndNext: KillAll kills every accepted connection;
// Next hands connections to the test; SetSetup applies to later ones only.
func TestListenerKillAllAndNext(t *testing.T) {
	l, err := faultnet.Listen("tcp", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for range 2 {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
		<-ctx.Done()
	}()
	var clients []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	for range 2 {
		if c, err := l.Next(ctx); err != nil || c == nil {
			t.Fatalf("Next = %v, %v", c, err)
		}
	}
	l.KillAll()
	for _, c := range clients {
		_ = c.SetReadDeadline(time.Now().Add(hang))
		if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("peer of a killed connection: Read = %v", err)
		}
	}
	for _, c := range l.Conns() {
		if !c.Killed() {
			t.Error("a connection survived KillAll")
		}
	}
	cancel()
	<-accepted
}

// TestDialer wraps dialed connections.
func TestDialer(t *testing.T) {
	nl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	d := &faultnet.Dialer{Setup: func(c *faultnet.Conn) { c.Set(faultnet.Write, faultnet.Blackhole) }}
	c, err := d.DialContext(context.Background(), "tcp", nl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc, err := nl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if _, err := c.Write([]byte("gone")); err != nil {
		t.Fatal(err)
	}
	_ = sc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := sc.Read(make([]byte, 4)); !isTimeout(err) {
		t.Fatalf("peer Read = %v, want a timeout (the writes vanished)", err)
	}
}
