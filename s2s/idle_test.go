package s2s_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
)

// writers counts the stream writer goroutines in the process.
func writers() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "s2s.(*Server).writeLoop")
}

// TestIdleStreamHasNoWriter checks that an established stream keeps no
// writer goroutine while it has nothing to write (the memory target of an
// idle stream depends on it), and that the writer comes back, in order,
// for the next stanzas.
func TestIdleStreamHasNoWriter(t *testing.T) {
	h := newHarness(t)
	b := h.node("b.example", nodeOpt{})
	a := h.node("a.example", nodeOpt{})
	ctx := context.Background()
	if err := a.srv.Send(ctx, msg(t, "u@a.example", "v@b.example", "first")); err != nil {
		t.Fatal(err)
	}
	if got := <-b.got; !strings.Contains(string(got.Raw()), "first") {
		t.Fatalf("got %s", got.Raw())
	}
	idle := false
	for range 2000 {
		if writers() == 0 {
			idle = true
			break
		}
		time.Sleep(time.Millisecond)
	}
	if !idle {
		t.Fatalf("%d writer goroutines remain on an idle stream", writers())
	}
	for i := range 20 {
		if err := a.srv.Send(ctx, msg(t, "u@a.example", "v@b.example", "n"+strings.Repeat("x", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		select {
		case got := <-b.got:
			if want := ">n" + strings.Repeat("x", i) + "<"; !strings.Contains(string(got.Raw()), want) {
				t.Fatalf("stanza %d out of order: %s", i, got.Raw())
			}
		case <-time.After(hang):
			t.Fatalf("stanza %d not delivered after the writer went idle", i)
		}
	}
	if n := len(a.srv.Stats().Streams); n != 1 {
		t.Fatalf("%d streams, want the one reused", n)
	}
}
