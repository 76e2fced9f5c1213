package s2s_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/xmppfed/xmppfed/s2s"
)

// eventLog collects a Server's stream events.
type eventLog struct {
	mu sync.Mutex
	ev []s2s.StreamEvent
	c  chan s2s.StreamEvent
}

func newEventLog() *eventLog { return &eventLog{c: make(chan s2s.StreamEvent, 100)} }

func (l *eventLog) hook(ev s2s.StreamEvent) {
	l.mu.Lock()
	l.ev = append(l.ev, ev)
	l.mu.Unlock()
	select {
	case l.c <- ev:
	default:
	}
}

// next waits for the next event of type typ.
func (l *eventLog) next(t *testing.T, typ s2s.StreamEventType) s2s.StreamEvent {
	t.Helper()
	for {
		ev := recv(t, l.c, typ.String()+" event")
		if ev.Type == typ {
			return ev
		}
	}
}

// TestStreamEvents: an outbound stream reports established (with its
// partner and method) and closed, the peer sees the inbound side, a
// failure to reach a domain is an event and LastFailure, and Close closes
// the stream on both sides.
func TestStreamEvents(t *testing.T) {
	h := newHarness(t)
	la, lb := newEventLog(), newEventLog()
	a := h.node("a.example", nodeOpt{mod: func(s *s2s.Server) { s.StreamEvent = la.hook }})
	b := h.node("b.example", nodeOpt{mod: func(s *s2s.Server) { s.StreamEvent = lb.hook }})
	ctx := context.Background()

	// A domain nobody serves: a failed event, remembered.
	if err := a.srv.Send(ctx, msg(t, "alice@a.example", "bob@nowhere.example", "x")); err != nil {
		t.Fatal(err)
	}
	recv(t, a.bounced, "bounce")
	fail := la.next(t, s2s.StreamFailed)
	var ne *s2s.NegotiationError
	if fail.Direction != s2s.Outbound || fail.Remote != "nowhere.example" || fail.Local != "a.example" || !errors.As(fail.Err, &ne) || ne.Step != "dns" {
		t.Errorf("failed event = %+v", fail)
	}
	if err, at := a.srv.LastFailure("nowhere.example"); err == nil || at.IsZero() {
		t.Errorf("LastFailure(nowhere.example) = %v, %v", err, at)
	}
	if err, _ := a.srv.LastFailure("b.example"); err != nil {
		t.Errorf("LastFailure(b.example) = %v before any attempt", err)
	}

	if err := a.srv.Send(ctx, msg(t, "alice@a.example", "bob@b.example", "hello")); err != nil {
		t.Fatal(err)
	}
	recv(t, b.got, "message")
	up := la.next(t, s2s.StreamEstablished)
	if up.Direction != s2s.Outbound || up.Local != "a.example" || up.Remote != "b.example" || up.Partner != "b.example" || up.Auth != s2s.AuthSASLExternal || up.Err != nil {
		t.Errorf("established event = %+v", up)
	}
	in := lb.next(t, s2s.StreamEstablished)
	if in.Direction != s2s.Inbound || in.Remote != "a.example" || in.Local != "b.example" {
		t.Errorf("peer's established event = %+v", in)
	}
	if a.srv.Queued() != 0 {
		t.Errorf("Queued = %d after delivery", a.srv.Queued())
	}

	if err := a.srv.Close(); err != nil {
		t.Fatal(err)
	}
	down := la.next(t, s2s.StreamClosed)
	if down.Remote != "b.example" || down.Auth != s2s.AuthSASLExternal {
		t.Errorf("closed event = %+v", down)
	}
	lb.next(t, s2s.StreamClosed)
	for _, typ := range []s2s.StreamEventType{s2s.StreamEstablished, s2s.StreamClosed, s2s.StreamFailed, 9} {
		if typ.String() == "" || (typ == 9) != strings.HasPrefix(typ.String(), "StreamEventType(") {
			t.Errorf("String(%d) = %q", typ, typ.String())
		}
	}
}

// TestResultReply: the result to an iq get carries the payload, swaps the
// addresses and refuses what is not a request or not well formed.
func TestResultReply(t *testing.T) {
	req, err := s2s.ParseStanza([]byte("<iq xmlns='jabber:server' from='b.example' to='a.example' id='x&amp;1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>"))
	if err != nil {
		t.Fatal(err)
	}
	for _, payload := range []string{"", "<query xmlns='jabber:iq:version'><name>n &amp; m</name></query>"} {
		r, err := req.ResultReply([]byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		again, err := s2s.ParseStanza(r.Raw())
		if err != nil {
			t.Fatalf("%s: %v", r.Raw(), err)
		}
		if again.Type != "result" || again.ID != "x&1" || again.From.String() != "a.example" || again.To.String() != "b.example" ||
			!strings.Contains(string(r.Raw()), payload) {
			t.Errorf("reply %s", r.Raw())
		}
	}
	for _, payload := range []string{"text", "<a/><b/>", "<a>", "<a/>tail", "<!-- c --><a/>"} {
		if _, err := req.ResultReply([]byte(payload)); !errors.Is(err, s2s.ErrInvalidStanza) {
			t.Errorf("payload %q: %v, want ErrInvalidStanza", payload, err)
		}
	}
	res, err := s2s.ParseStanza([]byte("<iq xmlns='jabber:server' from='b.example' to='a.example' id='1' type='result'/>"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := res.ResultReply(nil); err == nil {
		t.Error("ResultReply to a result succeeded")
	}
}
