package s2s

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
	"github.com/xmppfed/xmppfed/policy"
)

// indexServer is a started Server for a.example and a2.example under open
// federation, plus the partner p.example (with p2.example), whose
// resolver knows no remote domain: every new outbound attempt fails at
// once with remote-server-not-found. Bounces go to the returned channel.
func indexServer(t *testing.T) (*Server, <-chan stanza.Error) {
	t.Helper()
	d := dnsdiscotest.NewServer()
	t.Cleanup(d.Close)
	bounced := make(chan stanza.Error, 16)
	s := &Server{
		Domains:  []string{"a.example", "a2.example"},
		Resolver: d.Resolver(),
		Policy: NewPolicy(t, CommonSettings(), func(c *policy.Config) {
			c.Partners = append(c.Partners, policy.Partner{Domain: "p.example", AdditionalDomains: []string{"p2.example"}, Settings: CommonSettings()})
		}),
		Bounce: func(_ context.Context, _ *Stanza, e stanza.Error) {
			select {
			case bounced <- e:
			default:
				t.Errorf("bounce not recorded: %v", e)
			}
		},
	}
	s.start()
	t.Cleanup(func() { _ = s.Close() })
	return s, bounced
}

// fakeStream returns an admitted, unregistered inbound bidi stream with
// remote on a pipe.
func fakeStream(t *testing.T, s *Server, local, remote string) *stream {
	t.Helper()
	c1, c2 := net.Pipe()
	t.Cleanup(func() {
		_ = c1.Close()
		_ = c2.Close()
	})
	st := &stream{srv: s, dir: Inbound, conn: c1, local: local, remote: remote, bidi: true, created: time.Now()}
	rem, err := s.remote(remote)
	if err != nil {
		t.Fatal(err)
	}
	st.admit(rem)
	return st
}

// checkIndexes compares the Server's stream indexes with what a scan of
// every registered stream finds.
func checkIndexes(t *testing.T, s *Server) {
	t.Helper()
	r := &s.run
	r.mu.Lock()
	defer r.mu.Unlock()
	byRemote := map[string][]*stream{}
	byPartner := map[string][]*stream{}
	bySend := map[pair][]*stream{}
	multi := map[*stream]struct{}{}
	for st := range r.streams {
		byRemote[st.remote] = append(byRemote[st.remote], st)
		if st.partner != st.remote {
			byPartner[st.partner] = append(byPartner[st.partner], st)
		}
		st.mu.Lock()
		for p := range st.send.all() {
			bySend[p] = append(bySend[p], st)
			if p.remote != st.remote {
				multi[st] = struct{}{}
			}
		}
		for p := range st.recv.all() {
			if p.remote != st.remote {
				multi[st] = struct{}{}
			}
		}
		st.mu.Unlock()
	}
	if len(multi) != len(r.multi) {
		t.Errorf("%d streams with several domains indexed, want %d", len(r.multi), len(multi))
	}
	for st := range multi {
		if _, ok := r.multi[st]; !ok {
			t.Errorf("a stream with several domains is not indexed as such")
		}
	}
	same := func(name string, got, want map[string][]*stream) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: %d keys, want %d", name, len(got), len(want))
		}
		for k, w := range want {
			g := got[k]
			if len(g) != len(w) {
				t.Errorf("%s[%s]: %d streams, want %d", name, k, len(g), len(w))
			}
			for _, st := range w {
				if !slices.Contains(g, st) {
					t.Errorf("%s[%s] misses a stream", name, k)
				}
			}
		}
	}
	same("byRemote", r.byRemote, byRemote)
	same("byPartner", r.byPartner, byPartner)
	sendGot, sendWant := map[string][]*stream{}, map[string][]*stream{}
	for p, l := range r.bySend {
		sendGot[p.local+"->"+p.remote] = l
	}
	for p, l := range bySend {
		sendWant[p.local+"->"+p.remote] = l
	}
	same("bySend", sendGot, sendWant)
}

// TestStreamIndexesExact: the indexes by remote domain, partner and send
// pair follow register, authorize (before and after register) and
// unregister exactly, and outboundFor and piggybackCandidates find the
// streams through them.
func TestStreamIndexesExact(t *testing.T) {
	s, _ := indexServer(t)
	ab := pair{local: "a.example", remote: "b.example"}
	a2b := pair{local: "a2.example", remote: "b.example"}
	ap := pair{local: "a.example", remote: "p.example"}
	ap2 := pair{local: "a.example", remote: "p2.example"}

	s1 := fakeStream(t, s, "a.example", "b.example")
	s1.authorize(ab, AuthSASLExternal, true) // before register
	s2 := fakeStream(t, s, "a.example", "b.example")
	s3 := fakeStream(t, s, "a.example", "p2.example")
	s3.authorize(ap2, AuthSASLExternal, true)
	s4 := fakeStream(t, s, "a.example", "p.example") // the partner's main domain
	for _, st := range []*stream{s1, s2, s3, s4} {
		if err := s.register(st); err != nil {
			t.Fatal(err)
		}
		checkIndexes(t, s)
	}
	s2.authorize(a2b, AuthDialback, true) // after register
	s2.authorize(ab, AuthDialback, false) // receive pairs are not indexed
	s3.authorize(ap, AuthDialback, true)  // the partner's main domain
	s3.authorize(ap, AuthDialback, true)  // twice: once in the index
	checkIndexes(t, s)
	if _, ok := s.run.multi[s3]; !ok || len(s.run.multi) != 1 {
		t.Errorf("multi-domain streams %v, want s3 only", s.run.multi)
	}
	if l := s.run.byPartner["p.example"]; len(l) != 1 || l[0] != s3 || s3.partner != "p.example" || s4.partner != "p.example" {
		t.Errorf("streams under partner p.example: %v, want the one to p2.example (s3) only", l)
	}
	if got := s.outboundFor("a.example", "b.example"); got != s1 {
		t.Errorf("outboundFor(a, b) = %p, want s1 %p", got, s1)
	}
	if got := s.outboundFor("a2.example", "b.example"); got != s2 {
		t.Errorf("outboundFor(a2, b) = %p, want s2 %p", got, s2)
	}
	if got := s.outboundFor("a.example", "p.example"); got != s3 {
		t.Errorf("outboundFor(a, p) = %p, want s3 (piggybacked for the same partner)", got)
	}
	if got := s.outboundFor("a2.example", "p.example"); got != nil {
		t.Errorf("outboundFor(a2, p) = %p, want none (not authorized)", got)
	}
	if got := s.piggybackCandidates(pair{local: "a2.example", remote: "b.example"}); len(got) != 2 {
		t.Errorf("piggyback candidates for a2->b: %d streams, want s1 and s2", len(got))
	}
	for _, st := range []*stream{s2, s1, s4, s3} {
		s.unregister(st)
		s.unregister(st) // twice: a no-op
		checkIndexes(t, s)
	}
	s1.authorize(pair{local: "a2.example", remote: "b.example"}, AuthDialback, true) // after unregister
	checkIndexes(t, s)
	if len(s.run.byRemote)+len(s.run.byPartner)+len(s.run.bySend)+len(s.run.multi) != 0 {
		t.Errorf("indexes not empty after every stream left: %v %v %v %v", s.run.byRemote, s.run.byPartner, s.run.bySend, s.run.multi)
	}
}

// TestStanzaOnStreamThatNeverRan forces the lost wake-up window of a
// stream registered from its header (inbound, bidi) that was chosen to
// send on and then failed its negotiation before it ran: endStream never
// runs for it, so before the fix the stanza stayed in its queue for good
// (neither delivered nor bounced, and no attempt scheduled). Now it goes
// back to its pair, which makes a new attempt (which fails here: no DNS
// records, so the stanza is bounced with remote-server-not-found).
func TestStanzaOnStreamThatNeverRan(t *testing.T) {
	s, bounced := indexServer(t)
	st := fakeStream(t, s, "a.example", "b.example")
	if err := s.register(st); err != nil {
		t.Fatal(err)
	}
	st.authorize(pair{local: "a.example", remote: "b.example"}, AuthSASLExternal, true)
	stz, err := ParseStanza([]byte("<message xmlns='jabber:server' from='u@a.example' to='v@b.example' id='1'><body>x</body></message>"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), stz); err != nil {
		t.Fatal(err)
	}
	// The pool's attempt hands the stanza to st (still negotiating: it
	// has no writer yet).
	handed := false
	for range 5000 {
		st.rt.mu.Lock()
		handed = len(st.rt.q) == 1
		st.rt.mu.Unlock()
		if handed {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if !handed {
		t.Fatal("the stanza was not handed to the negotiating bidi stream")
	}
	// Its negotiation fails (acceptStream's error path).
	s.unregister(st)
	select {
	case e := <-bounced:
		if e.Condition != stanza.RemoteServerNotFound {
			t.Errorf("bounced with %v, want remote-server-not-found from a new attempt", e.Condition)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the stanza queued on a stream that never ran was neither retried nor bounced")
	}
	if st.enqueue(outItem{raw: []byte("<x/>")}) {
		t.Error("a stream that never ran still takes stanzas after it was unregistered")
	}
}
