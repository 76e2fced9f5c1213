package translate_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/internal/clock"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Addresses used throughout: local users at corp.example; remote users at
// a Federated, a PublicVerified and a PublicUnverified partner.
var (
	bob   = jid.MustParse("bob@corp.example")
	carol = jid.MustParse("carol@corp.example")
	fedU  = jid.MustParse("alice@fed.example")
	fedU2 = jid.MustParse("dave@fed.example")
	verU  = jid.MustParse("vera@ver.example")
	unvU  = jid.MustParse("uma@unv.example")
)

const personalNote = "In the lab until five"

// fakeHost records what the Translator delivers and answers
// CurrentPresence from a table.
type fakeHost struct {
	mu      sync.Mutex
	msgs    []translate.Message
	pres    []translate.Presence
	subs    []translate.Subscription
	current map[string]translate.Presence
	msgErr  error // returned by DeliverMessage
	subErr  error // returned by DeliverSubscription
}

func (h *fakeHost) DeliverMessage(_ context.Context, m *translate.Message) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.msgErr != nil {
		return h.msgErr
	}
	h.msgs = append(h.msgs, *m)
	return nil
}

func (h *fakeHost) DeliverPresence(_ context.Context, p *translate.Presence) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pres = append(h.pres, *p)
	return nil
}

func (h *fakeHost) DeliverSubscription(_ context.Context, s *translate.Subscription) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subErr != nil {
		return h.subErr
	}
	h.subs = append(h.subs, *s)
	return nil
}

func (h *fakeHost) CurrentPresence(_ context.Context, user jid.JID) (*translate.Presence, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.current[user.Bare().String()]
	if !ok {
		return &translate.Presence{From: user, Availability: translate.Offline}, nil
	}
	return &p, nil
}

func (h *fakeHost) setCurrent(user jid.JID, a translate.Availability, note string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.current == nil {
		h.current = make(map[string]translate.Presence)
	}
	h.current[user.String()] = translate.Presence{From: user, Availability: a, Note: note}
}

// seen returns copies of what was delivered so far.
func (h *fakeHost) seen() (msgs []translate.Message, pres []translate.Presence, subs []translate.Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append(msgs, h.msgs...), append(pres, h.pres...), append(subs, h.subs...)
}

func (h *fakeHost) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs, h.pres, h.subs = nil, nil, nil
}

// newPolicy returns a real policy with one partner of each type and XMPP
// access on for everyone.
func newPolicy(t *testing.T, gw policy.Gateway) *policy.Policy {
	t.Helper()
	c := &policy.Config{
		Gateway: gw,
		Partners: []policy.Partner{
			{Domain: "fed.example", Type: policy.Federated},
			{Domain: "ver.example", Type: policy.PublicVerified},
			{Domain: "unv.example", Type: policy.PublicUnverified},
		},
		Policies: []policy.AccessPolicy{{Name: "global", EnableXMPPAccess: true, EnableFederationAccess: true}},
	}
	p, err := policy.New(context.Background(), policy.NewMemStore(c), nil)
	if err != nil {
		t.Fatalf("policy.New: %v", err)
	}
	return p
}

type rig struct {
	tr     *translate.Translator
	host   *fakeHost
	roster *translate.MemRoster
	clock  *clock.Fake
}

func newRig(t *testing.T, gw policy.Gateway) *rig {
	t.Helper()
	r := &rig{host: new(fakeHost), roster: new(translate.MemRoster), clock: clock.NewFake(time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC))}
	r.tr = &translate.Translator{Host: r.host, Roster: r.roster, Gate: newPolicy(t, gw)}
	translate.SetClock(r.tr, r.clock)
	r.host.setCurrent(bob, translate.Available, personalNote)
	return r
}

func (r *rig) setState(t *testing.T, local, remote jid.JID, s translate.SubState) {
	t.Helper()
	if err := r.roster.SetState(context.Background(), local, remote, s); err != nil {
		t.Fatal(err)
	}
}

func (r *rig) state(t *testing.T, local, remote jid.JID) translate.SubState {
	t.Helper()
	s, err := r.roster.State(context.Background(), local, remote)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (r *rig) in(t *testing.T, raw []byte) [][]byte {
	t.Helper()
	out, err := r.tr.Inbound(context.Background(), raw)
	if err != nil {
		t.Fatalf("Inbound(%s): %v", raw, err)
	}
	return out
}

func (r *rig) out(t *testing.T, v translate.Stanza) [][]byte {
	t.Helper()
	out, err := r.tr.Outbound(context.Background(), v)
	if err != nil {
		t.Fatalf("Outbound(%+v): %v", v, err)
	}
	return out
}

// enc encodes what a remote server would send.
func enc(t *testing.T, v translate.Stanza) []byte {
	t.Helper()
	b, err := translate.Encode(v, nil, true)
	if err != nil {
		t.Fatalf("Encode(%+v): %v", v, err)
	}
	return b
}

func full(t *testing.T, j jid.JID, res string) jid.JID {
	t.Helper()
	f, err := j.WithResource(res)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// wire is an output stanza as encoding/xml reads it.
type wire struct {
	XMLName xml.Name
	From    string  `xml:"from,attr"`
	To      string  `xml:"to,attr"`
	ID      string  `xml:"id,attr"`
	Type    string  `xml:"type,attr"`
	Show    *string `xml:"show"`
	Status  *string `xml:"status"`
	Body    *string `xml:"body"`
	Error   *struct {
		Type  string `xml:"type,attr"`
		Conds []struct {
			XMLName xml.Name
		} `xml:",any"`
	} `xml:"error"`
	Received *struct {
		ID string `xml:"id,attr"`
	} `xml:"urn:xmpp:receipts received"`
}

func parse(t *testing.T, b []byte) wire {
	t.Helper()
	var w wire
	if err := xml.Unmarshal(b, &w); err != nil {
		t.Fatalf("output %s: %v", b, err)
	}
	if w.XMLName.Space != "jabber:server" {
		t.Errorf("output %s: namespace %q", b, w.XMLName.Space)
	}
	return w
}

// condition returns the stanza error condition of w ("" when none).
func (w wire) condition() string {
	if w.Error == nil {
		return ""
	}
	for _, c := range w.Error.Conds {
		if c.XMLName.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.XMLName.Local != "text" {
			return c.XMLName.Local
		}
	}
	return ""
}

// decodeOut decodes an output stanza as the remote side would.
func decodeOut(t *testing.T, b []byte) translate.Stanza {
	t.Helper()
	v, err := translate.Decode(b, nil)
	if err != nil {
		t.Fatalf("Decode(%s): %v", b, err)
	}
	return v
}

func wantSub(t *testing.T, b []byte, from, to jid.JID, a translate.SubscriptionAction) {
	t.Helper()
	s, ok := decodeOut(t, b).(*translate.Subscription)
	if !ok || s.Action != a || !s.From.Equal(from) || !s.To.Equal(to) {
		t.Errorf("output %s; want %v from %v to %v", b, a, from, to)
	}
	w := parse(t, b)
	if w.Show != nil || w.Status != nil {
		t.Errorf("subscription stanza %s carries show or status", b)
	}
}

func wantPresence(t *testing.T, b []byte, from, to jid.JID) *translate.Presence {
	t.Helper()
	p, ok := decodeOut(t, b).(*translate.Presence)
	if !ok || !p.From.Equal(from) || !p.To.Equal(to) {
		t.Fatalf("output %s; want presence from %v to %v", b, from, to)
	}
	return p
}

func wantError(t *testing.T, out [][]byte, cond string) wire {
	t.Helper()
	if len(out) != 1 {
		t.Fatalf("%d stanzas out; want one error", len(out))
	}
	w := parse(t, out[0])
	if w.Type != "error" || w.condition() != cond {
		t.Errorf("reply %s; want error %s", out[0], cond)
	}
	return w
}

func subscribeRaw(t *testing.T, from, to jid.JID) []byte {
	return enc(t, &translate.Subscription{From: from, To: to, ID: "s1", Action: translate.Subscribe})
}

// TestRequiredFields checks that a Translator without Host, Roster or Gate
// says which, instead of panicking.
func TestRequiredFields(t *testing.T) {
	ctx := context.Background()
	raw := []byte(`<message xmlns='jabber:server' from='a@fed.example/r' to='bob@corp.example' type='chat'><body>hi</body></message>`)
	for _, tc := range []struct {
		tr   *translate.Translator
		name string
	}{
		{&translate.Translator{Roster: new(translate.MemRoster), Gate: newPolicy(t, policy.Gateway{})}, "Host"},
		{&translate.Translator{Host: new(fakeHost), Gate: newPolicy(t, policy.Gateway{})}, "Roster"},
		{&translate.Translator{Host: new(fakeHost), Roster: new(translate.MemRoster)}, "Gate"},
	} {
		calls := map[string]func() error{
			"Inbound":    func() error { _, err := tc.tr.Inbound(ctx, raw); return err },
			"Outbound":   func() error { _, err := tc.tr.Outbound(ctx, &translate.Probe{From: bob, To: fedU}); return err },
			"StreamDown": func() error { return tc.tr.StreamDown(ctx, "fed.example") },
			"StreamUp":   func() error { _, err := tc.tr.StreamUp(ctx, "fed.example"); return err },
		}
		for name, call := range calls {
			err := call()
			if err == nil || !strings.Contains(err.Error(), "Translator."+tc.name) {
				t.Errorf("%s without %s: %v; want an error naming the field", name, tc.name, err)
			}
		}
	}
}

// TestSubscribeFederated is REFERENCE #65: a Federated partner's subscribe
// is approved at once: subscribed, then the user's presence with the note.
func TestSubscribeFederated(t *testing.T) {
	r := newRig(t, policy.Gateway{})
	out := r.in(t, subscribeRaw(t, fedU, bob))
	if len(out) != 2 {
		t.Fatalf("%d stanzas out; want subscribed and presence", len(out))
	}
	wantSub(t, out[0], bob, fedU, translate.Subscribed)
	p := wantPresence(t, out[1], bob, fedU)
	if p.Availability != translate.Available || p.Note != personalNote {
		t.Errorf("presence %+v; want available with the note", p)
	}
	if s := r.state(t, bob, fedU); s != translate.From {
		t.Errorf("state %v; want From", s)
	}
	_, _, subs := r.host.seen()
	if len(subs) != 1 || !subs[0].AutoApproved || subs[0].Action != translate.Subscribe || !subs[0].From.Equal(fedU) || !subs[0].To.Equal(bob) {
		t.Errorf("host told %+v; want one auto-approved subscribe", subs)
	}
	// The watcher is now among those who get bob's presence.
	out = r.out(t, &translate.Presence{From: bob, Availability: translate.Busy, Note: personalNote})
	if len(out) != 1 {
		t.Fatalf("broadcast: %d stanzas; want 1", len(out))
	}
	if p := wantPresence(t, out[0], bob, fedU); p.Note != personalNote {
		t.Errorf("broadcast to a Federated watcher: note %q; want the personal note", p.Note)
	}
	// A repeated subscribe from a watcher is answered subscribed by the
	// server (RFC 6121 §3.1.3) without bothering the host.
	r.host.reset()
	out = r.in(t, subscribeRaw(t, full(t, fedU, "phone"), bob))
	if len(out) != 1 {
		t.Fatalf("repeated subscribe: %d stanzas; want 1", len(out))
	}
	wantSub(t, out[0], bob, fedU, translate.Subscribed)
	if _, _, subs := r.host.seen(); len(subs) != 0 {
		t.Errorf("host told %+v of a repeated subscribe", subs)
	}
}

// TestSubscribePublicVerified is REFERENCE #66: approved like Federated,
// but the presence never carries the note.
func TestSubscribePublicVerified(t *testing.T) {
	r := newRig(t, policy.Gateway{})
	out := r.in(t, subscribeRaw(t, verU, bob))
	if len(out) != 2 {
		t.Fatalf("%d stanzas out; want subscribed and presence", len(out))
	}
	wantSub(t, out[0], bob, verU, translate.Subscribed)
	p := wantPresence(t, out[1], bob, verU)
	w := parse(t, out[1])
	if p.Availability != translate.Available || p.Note == personalNote || (w.Status != nil && *w.Status == personalNote) {
		t.Errorf("presence %s; want available without the note", out[1])
	}
	if s := r.state(t, bob, verU); s != translate.From {
		t.Errorf("state %v; want From", s)
	}
	out = r.out(t, &translate.Presence{From: bob, Availability: translate.Away, Note: personalNote})
	if len(out) != 1 {
		t.Fatalf("broadcast: %d stanzas; want 1", len(out))
	}
	if w := parse(t, out[0]); w.Status != nil && *w.Status == personalNote {
		t.Errorf("broadcast to PublicVerified carries the note: %s", out[0])
	}
}

// TestSubscribePublicUnverified is REFERENCE #67: a stranger's subscribe is
// held for the user, nothing goes back; the user's approval then sends
// subscribed and presence. With DenyUnverifiedSubscriptions it is refused
// with unsubscribed and the state is unchanged.
func TestSubscribePublicUnverified(t *testing.T) {
	t.Run("held", func(t *testing.T) {
		r := newRig(t, policy.Gateway{})
		if out := r.in(t, subscribeRaw(t, unvU, bob)); len(out) != 0 {
			t.Fatalf("held subscribe answered: %q", out)
		}
		if s := r.state(t, bob, unvU); s != translate.NonePendingIn {
			t.Errorf("state %v; want None + Pending In", s)
		}
		_, pres, subs := r.host.seen()
		if len(subs) != 1 || subs[0].AutoApproved || subs[0].Action != translate.Subscribe || len(pres) != 0 {
			t.Errorf("host told %+v, %+v; want one subscribe to decide", subs, pres)
		}
		// No presence leaks to the pending requester.
		if out := r.out(t, &translate.Presence{From: bob, Availability: translate.Available}); len(out) != 0 {
			t.Errorf("presence sent to a pending requester: %q", out)
		}
		// A repeat is not delivered again (RFC 6121 A.3.1).
		if out := r.in(t, subscribeRaw(t, unvU, bob)); len(out) != 0 {
			t.Errorf("repeat answered: %q", out)
		}
		if _, _, subs := r.host.seen(); len(subs) != 1 {
			t.Errorf("repeat delivered: %+v", subs)
		}
		// The user approves.
		out := r.out(t, &translate.Subscription{From: bob, To: unvU, Action: translate.Subscribed})
		if len(out) != 2 {
			t.Fatalf("approval: %d stanzas; want subscribed and presence", len(out))
		}
		wantSub(t, out[0], bob, unvU, translate.Subscribed)
		if p := wantPresence(t, out[1], bob, unvU); p.Note == personalNote || p.Availability != translate.Available {
			t.Errorf("presence after approval %+v", p)
		}
		if s := r.state(t, bob, unvU); s != translate.From {
			t.Errorf("state %v; want From", s)
		}
	})
	t.Run("denied", func(t *testing.T) {
		r := newRig(t, policy.Gateway{DenyUnverifiedSubscriptions: true})
		out := r.in(t, subscribeRaw(t, unvU, bob))
		if len(out) != 1 {
			t.Fatalf("%d stanzas; want unsubscribed", len(out))
		}
		wantSub(t, out[0], bob, unvU, translate.Unsubscribed)
		if s := r.state(t, bob, unvU); s != translate.None {
			t.Errorf("state %v; want None", s)
		}
		if msgs, pres, subs := r.host.seen(); len(msgs)+len(pres)+len(subs) != 0 {
			t.Errorf("host saw %+v %+v %+v", msgs, pres, subs)
		}
	})
	t.Run("asked first", func(t *testing.T) {
		// The user asked to see the contact: the contact's subscribe is
		// approved (the user expressed intent, REFERENCE #67).
		r := newRig(t, policy.Gateway{DenyUnverifiedSubscriptions: true})
		out := r.out(t, &translate.Subscription{From: bob, To: unvU, Action: translate.Subscribe})
		if len(out) != 1 {
			t.Fatalf("subscribe: %d stanzas", len(out))
		}
		out = r.in(t, subscribeRaw(t, unvU, bob))
		if len(out) != 2 {
			t.Fatalf("%d stanzas; want subscribed and presence", len(out))
		}
		wantSub(t, out[0], bob, unvU, translate.Subscribed)
		if s := r.state(t, bob, unvU); s != translate.FromPendingOut {
			t.Errorf("state %v; want From + Pending Out", s)
		}
	})
}

// TestMessageStranger is REFERENCE #68 and #69: a PublicUnverified
// stranger's message is refused with forbidden and never delivered; a
// Federated or PublicVerified stranger's is delivered; an authorized
// PublicUnverified contact's is delivered.
func TestMessageStranger(t *testing.T) {
	r := newRig(t, policy.Gateway{})
	msg := func(from jid.JID, id string) []byte {
		return enc(t, &translate.Message{From: full(t, from, "web"), To: bob, ID: id, Type: translate.Chat, Body: "hello " + id})
	}
	w := wantError(t, r.in(t, msg(unvU, "m1")), "forbidden")
	if w.ID != "m1" || w.To != full(t, unvU, "web").String() || w.From != bob.String() {
		t.Errorf("error reply addressed %+v", w)
	}
	if msgs, _, _ := r.host.seen(); len(msgs) != 0 {
		t.Fatalf("host saw %+v", msgs)
	}
	for _, from := range []jid.JID{fedU, verU} {
		if out := r.in(t, msg(from, "m2")); len(out) != 0 {
			t.Errorf("message from %v answered %q", from, out)
		}
	}
	// uma asking to see bob does not make her authorized: bob has not
	// expressed any intent (None + Pending In).
	r.setState(t, bob, unvU, translate.NonePendingIn)
	wantError(t, r.in(t, msg(unvU, "m4")), "forbidden")
	r.setState(t, bob, unvU, translate.NonePendingOut) // bob asked to see uma
	if out := r.in(t, msg(unvU, "m3")); len(out) != 0 {
		t.Errorf("authorized message answered %q", out)
	}
	msgs, _, _ := r.host.seen()
	if len(msgs) != 3 {
		t.Fatalf("host saw %d messages; want 3", len(msgs))
	}
	for i, from := range []jid.JID{fedU, verU, unvU} {
		m := msgs[i]
		if !m.From.Equal(full(t, from, "web")) || !m.To.Equal(bob) || m.Body != "hello "+m.ID {
			t.Errorf("message %d: %+v", i, m)
		}
	}
	// A message to bob's full JID is delivered to bob (REFERENCE #73).
	if out := r.in(t, enc(t, &translate.Message{From: fedU, To: full(t, bob, "lync"), Body: "x"})); len(out) != 0 {
		t.Errorf("message to a full JID answered %q", out)
	}
	if msgs, _, _ := r.host.seen(); !msgs[3].To.Equal(bob) {
		t.Errorf("message to a full JID delivered to %v", msgs[3].To)
	}
}

// TestProbe is REFERENCE #70 and RFC 6121 §4.3.2: an unauthorized probe
// gets unsubscribed and no show or status; an authorized one gets the
// current presence (unavailable when offline); a probe refreshes the
// watcher.
func TestProbe(t *testing.T) {
	r := newRig(t, policy.Gateway{})
	r.host.setCurrent(bob, translate.DoNotDisturb, personalNote)
	for _, from := range []jid.JID{fedU, verU, unvU} {
		out := r.in(t, enc(t, &translate.Probe{From: from, To: bob, ID: "p1"}))
		if len(out) != 1 {
			t.Fatalf("probe from %v: %d stanzas; want 1", from, len(out))
		}
		w := parse(t, out[0])
		if w.XMLName.Local != "presence" || w.Type != "unsubscribed" || w.Show != nil || w.Status != nil {
			t.Errorf("unauthorized probe from %v answered %s; want unsubscribed alone", from, out[0])
		}
		if bytes.Contains(out[0], []byte(personalNote)) {
			t.Errorf("note leaked: %s", out[0])
		}
	}
	r.setState(t, bob, fedU, translate.From)
	out := r.in(t, enc(t, &translate.Probe{From: fedU, To: bob}))
	if len(out) != 1 {
		t.Fatalf("authorized probe: %d stanzas", len(out))
	}
	if p := wantPresence(t, out[0], bob, fedU); p.Availability != translate.DoNotDisturb || p.Note != personalNote {
		t.Errorf("probe answer %+v; want dnd with the note (Federated)", p)
	}
	r.setState(t, bob, verU, translate.Both)
	out = r.in(t, enc(t, &translate.Probe{From: verU, To: bob}))
	if w := parse(t, out[0]); w.Status != nil && *w.Status == personalNote {
		t.Errorf("probe answer to PublicVerified carries the note: %s", out[0])
	}
	r.host.setCurrent(bob, translate.Offline, "")
	out = r.in(t, enc(t, &translate.Probe{From: fedU, To: bob}))
	if w := parse(t, out[0]); w.Type != "unavailable" {
		t.Errorf("probe while offline answered %s; want unavailable", out[0])
	}
}

// TestConversationJID is REFERENCE #73 and RFC 6121 §5.1: a reply to a
// bare JID goes to the full JID that last wrote; unavailable presence from
// that resource unbinds it; an explicit full JID is kept.
func TestConversationJID(t *testing.T) {
	r := newRig(t, policy.Gateway{})
	r.setState(t, bob, fedU, translate.Both)
	reply := func() string {
		out := r.out(t, &translate.Message{From: bob, To: fedU, Body: "reply"})
		if len(out) != 1 {
			t.Fatalf("%d stanzas", len(out))
		}
		return parse(t, out[0]).To
	}
	if to := reply(); to != fedU.String() {
		t.Errorf("before any message: to %q; want the bare JID", to)
	}
	r.in(t, enc(t, &translate.Message{From: full(t, fedU, "phone"), To: bob, Body: "one"}))
	if to := reply(); to != "alice@fed.example/phone" {
		t.Errorf("reply to %q; want the phone", to)
	}
	r.in(t, enc(t, &translate.Message{From: full(t, fedU, "laptop"), To: bob, Body: "two"}))
	if to := reply(); to != "alice@fed.example/laptop" {
		t.Errorf("reply to %q; want the laptop", to)
	}
	out := r.out(t, &translate.Message{From: bob, To: full(t, fedU, "phone"), Body: "explicit"})
	if to := parse(t, out[0]).To; to != "alice@fed.example/phone" {
		t.Errorf("explicit full JID rewritten to %q", to)
	}
	r.in(t, enc(t, &translate.Presence{From: full(t, fedU, "laptop"), To: bob, Availability: translate.Offline}))
	if to := reply(); to != fedU.String() {
		t.Errorf("after the laptop left: to %q; want the bare JID", to)
	}
	// Another user's conversation is separate.
	if out := r.out(t, &translate.Message{From: carol, To: fedU, Body: "x"}); parse(t, out[0]).To != fedU.String() {
		t.Errorf("carol's message went to %s", out[0])
	}
}

// TestConversationBound checks that the conversation map keeps at most its
// bound, forgetting the oldest.
func TestConversationBound(t *testing.T) {
	r := newRig(t, policy.Gateway{})
	translate.SetMaxPairs(r.tr, 3)
	var users []jid.JID
	for i := range 5 {
		u := jid.MustParse(fmt.Sprintf("u%d@fed.example", i))
		users = append(users, u)
		r.in(t, enc(t, &translate.Message{From: full(t, u, "r"), To: bob, Body: "hi"}))
	}
	if convs, _, locks := translate.Sizes(r.tr); convs != 3 || locks != 0 {
		t.Errorf("conversations %d, locks %d; want 3, 0", convs, locks)
	}
	for i, u := range users {
		out := r.out(t, &translate.Message{From: bob, To: u, Body: "x"})
		want := u.String()
		if i >= 2 {
			want += "/r"
		}
		if got := parse(t, out[0]).To; got != want {
			t.Errorf("reply to user %d went to %q; want %q", i, got, want)
		}
	}
}

// TestMessageSize is REFERENCE #77: a message over MaxMessageBytes is
// refused with policy-violation inbound and ErrTooLarge outbound, never
// cut.
func TestMessageSize(t *testing.T) {
	r := newRig(t, policy.Gateway{})
	r.tr.MaxMessageBytes = 400
	big := strings.Repeat("é", 300)
	raw := enc(t, &translate.Message{From: full(t, fedU, "r"), To: bob, ID: "big", Body: big})
	w := wantError(t, r.in(t, raw), "policy-violation")
	if w.ID != "big" {
		t.Errorf("reply id %q", w.ID)
	}
	if msgs, _, _ := r.host.seen(); len(msgs) != 0 {
		t.Errorf("host got %d messages", len(msgs))
	}
	if out := r.in(t, enc(t, &translate.Message{From: full(t, fedU, "r"), To: bob, Body: "small"})); len(out) != 0 {
		t.Errorf("small message answered %q", out)
	}
	_, err := r.tr.Outbound(context.Background(), &translate.Message{From: bob, To: fedU, Body: big})
	if !errors.Is(err, translate.ErrTooLarge) {
		t.Errorf("outbound big message: %v; want ErrTooLarge", err)
	}
	// The default is 64 KiB.
	r.tr.MaxMessageBytes = 0
	huge := strings.Repeat("a", 65<<10)
	wantError(t, r.in(t, enc(t, &translate.Message{From: full(t, fedU, "r"), To: bob, Body: huge})), "policy-violation")
	if out := r.out(t, &translate.Message{From: bob, To: fedU, Body: big}); len(out) != 1 {
		t.Errorf("message under the default refused")
	}
}

// TestHostErrors is REFERENCE #81 and #82: each Host error comes back as
// its stanza error, never dropped.
func TestHostErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		cond string
	}{
		{translate.ErrUnknownUser, "service-unavailable"},
		{fmt.Errorf("directory: %w", translate.ErrUnknownUser), "service-unavailable"},
		{translate.ErrOffline, "recipient-unavailable"},
		{translate.ErrTooLarge, "policy-violation"},
		{stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}, "item-not-found"},
		{&policy.Denial{Rule: policy.RuleNoXMPPAccess, User: "bob@corp.example"}, "service-unavailable"},
		{errors.New("database on fire"), "internal-server-error"},
	} {
		var logs bytes.Buffer
		r := newRig(t, policy.Gateway{})
		r.tr.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		r.host.msgErr = tc.err
		w := wantError(t, r.in(t, enc(t, &translate.Message{From: full(t, fedU, "r"), To: bob, ID: "e1", Body: "secret words"})), tc.cond)
		if w.ID != "e1" {
			t.Errorf("%v: reply id %q", tc.err, w.ID)
		}
		if bytes.Contains(logs.Bytes(), []byte("secret words")) {
			t.Errorf("%v: body logged without LogBodies", tc.err)
		}
		// The same for a subscription request the host cannot take.
		r.host.msgErr, r.host.subErr = nil, tc.err
		wantError(t, r.in(t, subscribeRaw(t, unvU, bob)), tc.cond)
		if s := r.state(t, bob, unvU); s != translate.None {
			t.Errorf("%v: state %v after a refused request; want None", tc.err, s)
		}
	}
}

// TestSubscriptionFlow is REFERENCE #86 and #87: subscribe goes to the bare
// JID and the state is pending; the contact's subscribed completes it;
// unsubscribe and unsubscribed in both directions remove their side, and
// the host hears of the contact's.
func TestSubscriptionFlow(t *testing.T) {
	r := newRig(t, policy.Gateway{})
	out := r.out(t, &translate.Subscription{From: bob, To: full(t, fedU, "phone"), Action: translate.Subscribe})
	if len(out) != 1 {
		t.Fatalf("%d stanzas", len(out))
	}
	wantSub(t, out[0], bob, fedU, translate.Subscribe)
	if s := r.state(t, bob, fedU); s != translate.NonePendingOut {
		t.Fatalf("state %v; want None + Pending Out", s)
	}
	// A subscribed from someone bob did not ask is ignored (A.3.3).
	r.in(t, enc(t, &translate.Subscription{From: fedU2, To: bob, Action: translate.Subscribed}))
	if s := r.state(t, bob, fedU2); s != translate.None {
		t.Errorf("unrequested subscribed changed the state to %v", s)
	}
	r.in(t, enc(t, &translate.Subscription{From: fedU, To: bob, Action: translate.Subscribed}))
	if s := r.state(t, bob, fedU); s != translate.To {
		t.Fatalf("state %v; want To", s)
	}
	_, _, subs := r.host.seen()
	if len(subs) != 1 || subs[0].Action != translate.Subscribed || !subs[0].From.Equal(fedU) {
		t.Fatalf("host told %+v; want alice's subscribed only", subs)
	}
	// Alice's presence now reaches bob.
	r.in(t, enc(t, &translate.Presence{From: full(t, fedU, "phone"), To: bob, Availability: translate.Away}))
	if _, pres, _ := r.host.seen(); len(pres) != 1 || pres[0].Availability != translate.Away {
		t.Fatalf("presence %+v", pres)
	}
	// Alice subscribes back: approved (Federated), state Both.
	r.in(t, subscribeRaw(t, fedU, bob))
	if s := r.state(t, bob, fedU); s != translate.Both {
		t.Fatalf("state %v; want Both", s)
	}
	// Alice stops watching bob: From side removed, host told, nothing
	// sent back.
	r.host.reset()
	if out := r.in(t, enc(t, &translate.Subscription{From: fedU, To: bob, Action: translate.Unsubscribe})); len(out) != 0 {
		t.Errorf("unsubscribe answered %q", out)
	}
	if s := r.state(t, bob, fedU); s != translate.To {
		t.Errorf("state %v; want To", s)
	}
	if _, pres, subs := r.host.seen(); len(subs) != 1 || subs[0].Action != translate.Unsubscribe || len(pres) != 0 {
		t.Errorf("host told %+v %+v", subs, pres)
	}
	if _, refreshed, _ := translate.Sizes(r.tr); refreshed != 0 {
		t.Errorf("%d refresh entries kept for a watcher that left", refreshed)
	}
	// Alice cancels bob's subscription: host told, and alice shows
	// Offline (RFC 6121 §3.2.3).
	r.host.reset()
	r.in(t, enc(t, &translate.Subscription{From: fedU, To: bob, Action: translate.Unsubscribed}))
	if s := r.state(t, bob, fedU); s != translate.None {
		t.Errorf("state %v; want None", s)
	}
	_, pres, subs := r.host.seen()
	if len(subs) != 1 || subs[0].Action != translate.Unsubscribed {
		t.Errorf("host told %+v", subs)
	}
	if len(pres) != 1 || pres[0].Availability != translate.Offline || !pres[0].From.Equal(fedU) {
		t.Errorf("presence %+v; want alice Offline", pres)
	}
	// Presence from alice is no longer taken.
	r.host.reset()
	r.in(t, enc(t, &translate.Presence{From: full(t, fedU, "phone"), To: bob, Availability: translate.Available}))
	if _, pres, _ := r.host.seen(); len(pres) != 0 {
		t.Errorf("presence from a non-contact delivered: %+v", pres)
	}
}

// TestOutboundCancel covers the user's side of #87: unsubscribed to a
// watcher sends it unavailable presence (RFC 6121 §3.2.2); unsubscribe
// from a contact tells the host its presence is Unknown.
func TestOutboundCancel(t *testing.T) {
	r := newRig(t, policy.Gateway{})
	r.setState(t, bob, fedU, translate.Both)
	r.in(t, enc(t, &translate.Presence{From: full(t, fedU, "phone"), To: bob, Availability: translate.Available}))
	out := r.out(t, &translate.Subscription{From: bob, To: fedU, Action: translate.Unsubscribed})
	if len(out) != 2 {
		t.Fatalf("%d stanzas; want unsubscribed and unavailable", len(out))
	}
	wantSub(t, out[0], bob, fedU, translate.Unsubscribed)
	if w := parse(t, out[1]); w.XMLName.Local != "presence" || w.Type != "unavailable" {
		t.Errorf("second stanza %s; want unavailable", out[1])
	}
	if s := r.state(t, bob, fedU); s != translate.To {
		t.Errorf("state %v; want To", s)
	}
	r.host.reset()
	out = r.out(t, &translate.Subscription{From: bob, To: fedU, Action: translate.Unsubscribe})
	if len(out) != 1 {
		t.Fatalf("%d stanzas", len(out))
	}
	wantSub(t, out[0], bob, fedU, translate.Unsubscribe)
	if _, pres, _ := r.host.seen(); len(pres) != 1 || pres[0].Availability != translate.Unknown {
		t.Errorf("presence %+v; want alice Unknown", pres)
	}
	// A subscribed with nothing pending is not sent (A.2.3).
	if out := r.out(t, &translate.Subscription{From: bob, To: fedU2, Action: translate.Subscribed}); len(out) != 0 {
		t.Errorf("pre-approval sent %q", out)
	}
	// Errors name what is missing; nothing is sent.
	if _, err := r.tr.Outbound(context.Background(), &translate.Subscription{From: bob, Action: translate.Subscribe}); err == nil {
		t.Error("subscription without To accepted")
	}
	if _, err := r.tr.Outbound(context.Background(), (*translate.Message)(nil)); err == nil {
		t.Error("nil message accepted")
	}
}

// TestOfflineBroadcast is REFERENCE #90: Offline goes to every watcher
// the policy allows, fresh or not, as unavailable.
func TestOfflineBroadcast(t *testing.T) {
	r := newRig(t, policy.Gateway{})
	watchers := []jid.JID{fedU, fedU2, verU, unvU}
	for _, w := range watchers {
		r.setState(t, bob, w, translate.From)
	}
	r.setState(t, bob, jid.MustParse("x@fed.example"), translate.To) // not a watcher
	if out := r.out(t, &translate.Presence{From: bob, Availability: translate.Available}); len(out) != len(watchers) {
		t.Errorf("fresh watchers got %d presences; want %d", len(out), len(watchers))
	}
	r.clock.Advance(9 * time.Hour) // every subscription is stale
	if out := r.out(t, &translate.Presence{From: bob, Availability: translate.Available}); len(out) != 0 {
		t.Errorf("stale watchers got %d presences", len(out))
	}
	out := r.out(t, &translate.Presence{From: bob, Availability: translate.Offline, Note: personalNote})
	if len(out) != len(watchers) {
		t.Fatalf("%d stanzas; want one per watcher", len(out))
	}
	got := make(map[string]bool)
	for _, b := range out {
		w := parse(t, b)
		if w.Type != "unavailable" || w.From != bob.String() || w.Show != nil {
			t.Errorf("offline broadcast %s", b)
		}
		got[w.To] = true
	}
	for _, w := range watchers {
		if !got[w.String()] {
			t.Errorf("%v got no unavailable", w)
		}
	}
}

// TestBroadcastPolicyChange checks that a watcher the policy no longer
// admits (partner removed, federation off) gets no presence, not even
// Offline.
func TestBroadcastPolicyChange(t *testing.T) {
	r := newRig(t, policy.Gateway{})
	gate := r.tr.Gate.(*policy.Policy)
	r.setState(t, bob, fedU, translate.From)
	r.setState(t, bob, verU, translate.From)
	if _, err := gate.Apply(context.Background(), policy.ApplyOptions{}, policy.RemovePartner("ver.example")); err != nil {
		t.Fatal(err)
	}
	for _, a := range []translate.Availability{translate.Available, translate.Offline} {
		out := r.out(t, &translate.Presence{From: bob, Availability: a})
		if len(out) != 1 || parse(t, out[0]).To != fedU.String() {
			t.Errorf("%v after removing ver.example: %q; want alice only", a, out)
		}
	}
	if _, err := gate.Apply(context.Background(), policy.ApplyOptions{}, policy.SetGateway(policy.Gateway{DisableFederation: true})); err != nil {
		t.Fatal(err)
	}
	if out := r.out(t, &translate.Presence{From: bob, Availability: translate.Available}); len(out) != 0 {
		t.Errorf("with federation off: %q", out)
	}
}

// TestDirectedPresence is RFC 6121 §4.6: a presence with To goes there
// only, with the note for a Federated partner; a domain the policy does not
// admit is an error and nothing is sent.
func TestDirectedPresence(t *testing.T) {
	r := newRig(t, policy.Gateway{})
	r.setState(t, bob, fedU2, translate.From)
	out := r.out(t, &translate.Presence{From: bob, To: full(t, fedU, "phone"), Availability: translate.Busy, Note: personalNote})
	if len(out) != 1 {
		t.Fatalf("%d stanzas", len(out))
	}
	if p := wantPresence(t, out[0], bob, full(t, fedU, "phone")); p.Note != personalNote {
		t.Errorf("directed presence %+v", p)
	}
	_, err := r.tr.Outbound(context.Background(), &translate.Presence{From: bob, To: jid.MustParse("x@nowhere.example"), Availability: translate.Busy})
	var d *policy.Denial
	if !errors.As(err, &d) || d.Rule != policy.RuleNotPartner {
		t.Errorf("presence to a non-partner: %v; want a RuleNotPartner denial", err)
	}
}

// TestStreamLoss is REFERENCE #91: StreamDown reports the domain's
// contacts Unknown (not Offline), others untouched; StreamUp probes every
// contact there again.
func TestStreamLoss(t *testing.T) {
	r := newRig(t, policy.Gateway{})
	for _, p := range [][2]jid.JID{{bob, fedU}, {bob, fedU2}, {carol, fedU}, {bob, verU}} {
		r.setState(t, p[0], p[1], translate.Both)
		r.in(t, enc(t, &translate.Presence{From: full(t, p[1], "r"), To: p[0], Availability: translate.Available}))
	}
	r.setState(t, carol, fedU2, translate.From) // carol does not see dave: no probe
	r.host.reset()
	if err := r.tr.StreamDown(context.Background(), "FED.example"); err != nil {
		t.Fatal(err)
	}
	_, pres, _ := r.host.seen()
	if len(pres) != 3 {
		t.Fatalf("%d presences; want 3: %+v", len(pres), pres)
	}
	for _, p := range pres {
		if p.Availability != translate.Unknown || p.From.Domainpart() != "fed.example" {
			t.Errorf("after StreamDown: %+v; want Unknown from fed.example", p)
		}
	}
	// A second StreamDown has nothing more to report.
	r.host.reset()
	if err := r.tr.StreamDown(context.Background(), "fed.example"); err != nil {
		t.Fatal(err)
	}
	if _, pres, _ := r.host.seen(); len(pres) != 0 {
		t.Errorf("second StreamDown reported %+v", pres)
	}
	out, err := r.tr.StreamUp(context.Background(), "fed.example")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"bob@corp.example>alice@fed.example": true, "bob@corp.example>dave@fed.example": true, "carol@corp.example>alice@fed.example": true}
	if len(out) != len(want) {
		t.Fatalf("%d probes; want %d", len(out), len(want))
	}
	for _, b := range out {
		pr, ok := decodeOut(t, b).(*translate.Probe)
		if !ok || !want[pr.From.String()+">"+pr.To.String()] {
			t.Errorf("unexpected %s", b)
		}
	}
	// Presence after the stream is back is delivered again.
	r.host.reset()
	r.in(t, enc(t, &translate.Presence{From: full(t, fedU, "r"), To: bob, Availability: translate.Available}))
	if _, pres, _ := r.host.seen(); len(pres) != 1 || pres[0].Availability != translate.Available {
		t.Errorf("presence after reconnect: %+v", pres)
	}
}

// TestAggregation is REFERENCE #92: presence over several resources is
// aggregated by priority, then availability, and delivered only when the
// aggregate changes; the last resource's unavailable gives Offline.
func TestAggregation(t *testing.T) {
	type step struct {
		res      string
		a        translate.Availability // Offline: unavailable
		priority int8
		want     translate.Availability // translate.Unknown: nothing delivered
		wantPrio int8
	}
	const none = translate.Unknown
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"one resource", []step{
			{"a", translate.Available, 0, translate.Available, 0},
			{"a", translate.Available, 0, none, 0}, // unchanged: not delivered
			{"a", translate.Away, 0, translate.Away, 0},
			{"a", translate.Offline, 0, translate.Offline, 0},
			{"a", translate.Offline, 0, none, 0},
		}},
		{"higher priority wins", []step{
			{"phone", translate.Away, 5, translate.Away, 5},
			{"desk", translate.Available, 1, none, 0}, // lower priority: aggregate unchanged
			{"phone", translate.Offline, 0, translate.Available, 1},
			{"desk", translate.Offline, 0, translate.Offline, 0},
		}},
		{"tie: most available", []step{
			{"a", translate.Away, 0, translate.Away, 0},
			{"b", translate.DoNotDisturb, 0, translate.DoNotDisturb, 0},
			{"c", translate.Available, 0, translate.Available, 0},
			{"d", translate.Available, 0, none, 0}, // same aggregate
			{"c", translate.Offline, 0, none, 0},   // d is still available
			{"d", translate.Offline, 0, translate.DoNotDisturb, 0},
			{"b", translate.Offline, 0, translate.Away, 0},
		}},
		{"negative priority counts", []step{
			{"bot", translate.DoNotDisturb, -5, translate.DoNotDisturb, -5},
			{"desk", translate.Away, -1, translate.Away, -1},
			{"desk", translate.Offline, 0, translate.DoNotDisturb, -5},
			{"bot", translate.Offline, 0, translate.Offline, 0},
		}},
		{"unavailable first", []step{
			{"a", translate.Offline, 0, translate.Offline, 0},
			{"a", translate.Away, 0, translate.Away, 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, policy.Gateway{})
			r.setState(t, bob, fedU, translate.To)
			for i, s := range tc.steps {
				r.host.reset()
				r.in(t, enc(t, &translate.Presence{From: full(t, fedU, s.res), To: bob, Availability: s.a, Priority: s.priority}))
				_, pres, _ := r.host.seen()
				if s.want == none {
					if len(pres) != 0 {
						t.Errorf("step %d: delivered %+v; want nothing", i, pres)
					}
					continue
				}
				if len(pres) != 1 {
					t.Fatalf("step %d: %d presences; want 1", i, len(pres))
				}
				p := pres[0]
				if p.Availability != s.want || p.Priority != s.wantPrio || !p.From.Equal(fedU) || !p.To.Equal(bob) {
					t.Errorf("step %d: %+v; want %v priority %d from the bare JID", i, p, s.want, s.wantPrio)
				}
			}
		})
	}
}

// TestResourceBound checks that a contact with more than 64 resources
// keeps the 64 heard from last: the oldest is forgotten, and the
// aggregate follows.
func TestResourceBound(t *testing.T) {
	r := newRig(t, policy.Gateway{})
	r.setState(t, bob, fedU, translate.To)
	send := func(res string, a translate.Availability, prio int8) {
		r.in(t, enc(t, &translate.Presence{From: full(t, fedU, res), To: bob, Availability: a, Priority: prio}))
	}
	send("first", translate.Available, 10)
	for i := range 63 {
		send(fmt.Sprintf("r%d", i), translate.Away, 0)
	}
	_, pres, _ := r.host.seen()
	if last := pres[len(pres)-1]; last.Availability != translate.Available || last.Priority != 10 {
		t.Fatalf("with 64 resources: %+v; want the first one's presence", last)
	}
	send("r63", translate.Away, 0) // the 65th: "first" is forgotten
	_, pres, _ = r.host.seen()
	if last := pres[len(pres)-1]; last.Availability != translate.Away || last.Priority != 0 {
		t.Errorf("with 65 resources: %+v; want Away (the oldest forgotten)", last)
	}
}

// TestAvailabilityOrder checks the tie-break order of aggregation: Lync's
// availability numbers (REFERENCE §4.4), most available first.
func TestAvailabilityOrder(t *testing.T) {
	order := []translate.Availability{
		translate.Available, translate.Idle, translate.Busy, translate.DoNotDisturb,
		translate.BeRightBack, translate.Away, translate.Unknown,
	}
	for i := 1; i < len(order); i++ {
		if a, b := translate.Rank(order[i-1]), translate.Rank(order[i]); a >= b {
			t.Errorf("%v (rank %d) not more available than %v (rank %d)", order[i-1], a, order[i], b)
		}
	}
}

// TestRefresh is REFERENCE #54: a watcher's subscription expires after
// RefreshInterval without a probe or available presence; each refreshes
// it; negative never expires.
func TestRefresh(t *testing.T) {
	r := newRig(t, policy.Gateway{})
	r.tr.RefreshInterval = time.Hour
	for _, w := range []jid.JID{fedU, fedU2, verU} {
		r.setState(t, bob, w, translate.Both)
	}
	broadcast := func() map[string]bool {
		got := make(map[string]bool)
		for _, b := range r.out(t, &translate.Presence{From: bob, Availability: translate.Available}) {
			got[parse(t, b).To] = true
		}
		return got
	}
	if got := broadcast(); len(got) != 3 {
		t.Fatalf("fresh at start: %v", got)
	}
	r.clock.Advance(50 * time.Minute)
	r.in(t, enc(t, &translate.Probe{From: fedU, To: bob}))                                                      // refresh by probe
	r.in(t, enc(t, &translate.Presence{From: full(t, fedU2, "r"), To: bob, Availability: translate.Available})) // by presence
	r.clock.Advance(20 * time.Minute)
	got := broadcast()
	if len(got) != 2 || !got[fedU.String()] || !got[fedU2.String()] {
		t.Errorf("after 70 min: %v; want alice and dave only", got)
	}
	// Unavailable presence does not refresh.
	r.in(t, enc(t, &translate.Presence{From: full(t, verU, "r"), To: bob, Availability: translate.Offline}))
	if got := broadcast(); got[verU.String()] {
		t.Errorf("unavailable refreshed vera: %v", got)
	}
	r.clock.Advance(2 * time.Hour)
	if got := broadcast(); len(got) != 0 {
		t.Errorf("after 3 h: %v; want none", got)
	}
	r.tr.RefreshInterval = -1
	if got := broadcast(); len(got) != 3 {
		t.Errorf("never expiring: %v; want all", got)
	}
	// The default is 8 h.
	r.tr.RefreshInterval = 0
	r.in(t, enc(t, &translate.Probe{From: verU, To: bob}))
	r.clock.Advance(7 * time.Hour)
	if got := broadcast(); len(got) != 1 || !got[verU.String()] {
		t.Errorf("7 h after vera's probe: %v; want vera only", got)
	}
}

// TestChatStatesAndReceipts checks XEP-0085 and XEP-0184 flows: a chat
// state alone and a receipt request are delivered; an outbound receipt is
// encoded.
func TestChatStatesAndReceipts(t *testing.T) {
	r := newRig(t, policy.Gateway{})
	from := full(t, fedU, "phone")
	r.in(t, enc(t, &translate.Message{From: from, To: bob, ChatState: translate.Composing}))
	r.in(t, enc(t, &translate.Message{From: from, To: bob, ID: "m7", Body: "ping", ChatState: translate.Active, RequestReceipt: true}))
	msgs, _, _ := r.host.seen()
	if len(msgs) != 2 {
		t.Fatalf("%d messages", len(msgs))
	}
	if msgs[0].ChatState != translate.Composing || msgs[0].Body != "" {
		t.Errorf("chat state %+v", msgs[0])
	}
	if !msgs[1].RequestReceipt || msgs[1].ID != "m7" || msgs[1].ChatState != translate.Active {
		t.Errorf("receipt request %+v", msgs[1])
	}
	out := r.out(t, &translate.Message{From: bob, To: fedU, ReceiptFor: "m7"})
	w := parse(t, out[0])
	if w.Received == nil || w.Received.ID != "m7" || w.To != from.String() {
		t.Errorf("receipt %s; want <received id='m7'/> to the phone", out[0])
	}
	if m, ok := decodeOut(t, out[0]).(*translate.Message); !ok || m.ReceiptFor != "m7" {
		t.Errorf("receipt decodes as %+v", m)
	}
}

// TestInboundRefused checks stanzas the codec refuses or ignores: an
// error reply for groupchat, nothing for headline and error stanzas, and
// an error for bytes that are no stanza.
func TestInboundRefused(t *testing.T) {
	r := newRig(t, policy.Gateway{})
	out := r.in(t, []byte(`<message xmlns='jabber:server' from='room@conf.fed.example/x' to='bob@corp.example' type='groupchat' id='g1'><body>hi</body></message>`))
	wantError(t, out, "service-unavailable")
	for _, raw := range []string{
		`<message xmlns='jabber:server' from='news@fed.example' to='bob@corp.example' type='headline'><body>hi</body></message>`,
		`<message xmlns='jabber:server' from='alice@fed.example' to='bob@corp.example' type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`,
	} {
		if out := r.in(t, []byte(raw)); len(out) != 0 {
			t.Errorf("%s answered %q", raw, out)
		}
	}
	if _, err := r.tr.Inbound(context.Background(), []byte("not xml at all")); err == nil {
		t.Error("garbage accepted")
	}
	if msgs, pres, subs := r.host.seen(); len(msgs)+len(pres)+len(subs) != 0 {
		t.Errorf("host saw %+v %+v %+v", msgs, pres, subs)
	}
}

// failing is a Gate and Roster that fail every call.
type failing struct{}

var errBroken = errors.New("backend broken")

func (failing) Inbound(context.Context, policy.Request) (policy.Decision, error) {
	return policy.Decision{}, errBroken
}
func (failing) State(context.Context, jid.JID, jid.JID) (translate.SubState, error) {
	return translate.None, errBroken
}
func (failing) SetState(context.Context, jid.JID, jid.JID, translate.SubState) error {
	return errBroken
}
func (failing) Watchers(context.Context, jid.JID) ([]jid.JID, error) { return nil, errBroken }
func (failing) Contacts(context.Context, string) ([][2]jid.JID, error) {
	return nil, errBroken
}

// TestBackendErrors checks that Gate and Roster failures become
// internal-server-error replies, logged, and that their text stays here.
func TestBackendErrors(t *testing.T) {
	raws := [][]byte{
		enc(t, &translate.Message{From: full(t, fedU, "r"), To: bob, Body: "x"}),
		subscribeRaw(t, fedU, bob),
		enc(t, &translate.Probe{From: fedU, To: bob}),
		enc(t, &translate.Subscription{From: fedU, To: bob, Action: translate.Unsubscribed}),
		enc(t, &translate.Presence{From: full(t, fedU, "r"), To: bob, Availability: translate.Available}),
	}
	for _, which := range []string{"gate", "roster"} {
		var logs bytes.Buffer
		host := new(fakeHost)
		tr := &translate.Translator{Host: host, Roster: new(translate.MemRoster), Gate: failing{}}
		if which == "roster" {
			tr.Roster, tr.Gate = failing{}, newPolicy(t, policy.Gateway{})
		}
		tr.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		for i, raw := range raws {
			if which == "gate" && i >= 3 {
				continue // these do not ask the gate
			}
			out, err := tr.Inbound(context.Background(), raw)
			if err != nil {
				t.Fatal(err)
			}
			wantError(t, out, "internal-server-error")
			if bytes.Contains(out[0], []byte(errBroken.Error())) {
				t.Errorf("%s: error text leaked: %s", which, out[0])
			}
		}
		if !bytes.Contains(logs.Bytes(), []byte(errBroken.Error())) {
			t.Errorf("%s failure not logged", which)
		}
		if which == "roster" {
			if _, err := tr.Outbound(context.Background(), &translate.Presence{From: bob}); !errors.Is(err, errBroken) {
				t.Errorf("broadcast with a broken roster: %v", err)
			}
			if _, err := tr.StreamUp(context.Background(), "fed.example"); !errors.Is(err, errBroken) {
				t.Errorf("StreamUp with a broken roster: %v", err)
			}
		}
	}
}

// TestLogBodies is REFERENCE #93/#94: no body in any log line unless
// LogBodies.
func TestLogBodies(t *testing.T) {
	for _, logBodies := range []bool{false, true} {
		var logs bytes.Buffer
		r := newRig(t, policy.Gateway{})
		r.tr.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		r.tr.LogBodies = logBodies
		r.in(t, enc(t, &translate.Message{From: full(t, fedU, "r"), To: bob, Body: "inbound-secret"}))
		r.in(t, enc(t, &translate.Message{From: full(t, unvU, "r"), To: bob, Body: "refused-secret"}))
		r.out(t, &translate.Message{From: bob, To: fedU, Body: "outbound-secret"})
		for _, body := range []string{"inbound-secret", "refused-secret", "outbound-secret"} {
			if got := bytes.Contains(logs.Bytes(), []byte(body)); got != logBodies {
				t.Errorf("LogBodies=%v: %q in the log: %v", logBodies, body, got)
			}
		}
		if !bytes.Contains(logs.Bytes(), []byte("alice@fed.example/r")) {
			t.Errorf("metadata not logged: %s", logs.Bytes())
		}
	}
}

// callbackHost approves every subscription request from within
// DeliverSubscription, by calling the Translator back.
type callbackHost struct {
	fakeHost
	tr  *translate.Translator
	out [][]byte
}

func (h *callbackHost) DeliverSubscription(ctx context.Context, s *translate.Subscription) error {
	if s.Action == translate.Subscribe && !s.AutoApproved {
		out, err := h.tr.Outbound(ctx, &translate.Subscription{From: s.To, To: s.From, Action: translate.Subscribed})
		if err != nil {
			return err
		}
		h.out = append(h.out, out...)
	}
	return h.fakeHost.DeliverSubscription(ctx, s)
}

// TestHostCallsBack checks that a Host may call the Translator from its
// methods without a deadlock.
func TestHostCallsBack(t *testing.T) {
	host := new(callbackHost)
	roster := new(translate.MemRoster)
	host.tr = &translate.Translator{Host: host, Roster: roster, Gate: newPolicy(t, policy.Gateway{})}
	out, err := host.tr.Inbound(context.Background(), subscribeRaw(t, unvU, bob))
	if err != nil || len(out) != 0 {
		t.Fatalf("Inbound: %q, %v", out, err)
	}
	if len(host.out) != 2 {
		t.Fatalf("the host's approval gave %d stanzas; want subscribed and presence", len(host.out))
	}
	wantSub(t, host.out[0], bob, unvU, translate.Subscribed)
	if s, _ := roster.State(context.Background(), bob, unvU); s != translate.From {
		t.Errorf("state %v; want From", s)
	}
}

// TestConcurrent runs inbound and outbound traffic from many goroutines
// (run with -race); the state ends consistent.
func TestConcurrent(t *testing.T) {
	r := newRig(t, policy.Gateway{})
	const n = 20
	var users []jid.JID
	for i := range n {
		u := jid.MustParse(fmt.Sprintf("user%d@fed.example", i))
		users = append(users, u)
	}
	var wg sync.WaitGroup
	for _, u := range users {
		wg.Go(func() {
			raw := subscribeRaw(t, u, bob)
			if _, err := r.tr.Inbound(context.Background(), raw); err != nil {
				t.Error(err)
			}
			for k := range 5 {
				m := enc(t, &translate.Message{From: full(t, u, "r"), To: bob, Body: fmt.Sprint(k)})
				if _, err := r.tr.Inbound(context.Background(), m); err != nil {
					t.Error(err)
				}
				if _, err := r.tr.Outbound(context.Background(), &translate.Presence{From: bob, Availability: translate.Available}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for _, u := range users {
		if s := r.state(t, bob, u); s != translate.From {
			t.Errorf("%v: state %v; want From", u, s)
		}
	}
	msgs, _, subs := r.host.seen()
	if len(msgs) != n*5 || len(subs) != n {
		t.Errorf("%d messages, %d subscriptions; want %d, %d", len(msgs), len(subs), n*5, n)
	}
	if out := r.out(t, &translate.Presence{From: bob, Availability: translate.Available}); len(out) != n {
		t.Errorf("broadcast to %d watchers; want %d", len(out), n)
	}
	if _, _, locks := translate.Sizes(r.tr); locks != 0 {
		t.Errorf("%d pair locks left", locks)
	}
}

// TestEndToEnd wires two Translators back to back, corp.example (which
// has lab.example as a Federated partner) and lab.example (which has
// corp.example as PublicVerified): a subscription each way, presence, a
// conversation with replies to the full JID, and a stream loss.
func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	mk := func(partner string, typ policy.PartnerType) (*translate.Translator, *fakeHost) {
		c := &policy.Config{
			Partners: []policy.Partner{{Domain: partner, Type: typ}},
			Policies: []policy.AccessPolicy{{Name: "global", EnableXMPPAccess: true, EnableFederationAccess: true}},
		}
		p, err := policy.New(ctx, policy.NewMemStore(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		h := new(fakeHost)
		return &translate.Translator{Host: h, Roster: new(translate.MemRoster), Gate: p}, h
	}
	corp, corpHost := mk("lab.example", policy.Federated)
	lab, labHost := mk("corp.example", policy.PublicVerified)
	sam := jid.MustParse("sam@lab.example")
	corpHost.setCurrent(bob, translate.Away, personalNote)
	labHost.setCurrent(sam, translate.Available, "at the bench")

	// deliver carries stanzas between the two until nothing is left.
	var deliver func(to *translate.Translator, out [][]byte)
	deliver = func(to *translate.Translator, out [][]byte) {
		other := corp
		if to == corp {
			other = lab
		}
		for _, b := range out {
			back, err := to.Inbound(ctx, b)
			if err != nil {
				t.Fatalf("Inbound(%s): %v", b, err)
			}
			deliver(other, back)
		}
	}
	send := func(from, to *translate.Translator, v translate.Stanza) {
		out, err := from.Outbound(ctx, v)
		if err != nil {
			t.Fatalf("Outbound(%+v): %v", v, err)
		}
		deliver(to, out)
	}

	// Bob subscribes to sam: lab auto-approves (corp is PublicVerified
	// there), bob gets subscribed and sam's presence, without sam's note.
	send(corp, lab, &translate.Subscription{From: bob, To: sam, Action: translate.Subscribe})
	if s, _ := corp.Roster.State(ctx, bob, sam); s != translate.To {
		t.Errorf("corp: bob->sam %v; want To", s)
	}
	if s, _ := lab.Roster.State(ctx, sam, bob); s != translate.From {
		t.Errorf("lab: sam->bob %v; want From", s)
	}
	_, pres, subs := corpHost.seen()
	if len(subs) != 1 || subs[0].Action != translate.Subscribed {
		t.Errorf("bob told %+v; want subscribed", subs)
	}
	if len(pres) != 1 || pres[0].Availability != translate.Available || pres[0].Note == "at the bench" || !pres[0].From.Equal(sam) {
		t.Errorf("bob sees %+v; want sam available without the note", pres)
	}
	if _, _, subs := labHost.seen(); len(subs) != 1 || !subs[0].AutoApproved {
		t.Errorf("sam told %+v; want an auto-approved subscribe", subs)
	}

	// Sam subscribes back: corp auto-approves (lab is Federated here):
	// sam sees bob busy, with the note.
	send(lab, corp, &translate.Subscription{From: sam, To: bob, Action: translate.Subscribe})
	if s, _ := corp.Roster.State(ctx, bob, sam); s != translate.Both {
		t.Errorf("corp: %v; want Both", s)
	}
	if s, _ := lab.Roster.State(ctx, sam, bob); s != translate.Both {
		t.Errorf("lab: %v; want Both", s)
	}
	_, pres, _ = labHost.seen()
	if len(pres) != 1 || pres[0].Availability != translate.Away || pres[0].Note != personalNote {
		t.Errorf("sam sees %+v; want bob away with the note", pres)
	}

	// A conversation: sam writes from a full JID, bob replies to the bare
	// JID and the reply reaches sam's resource.
	samDesk := full(t, sam, "desk")
	send(lab, corp, &translate.Message{From: samDesk, To: bob, ID: "q1", Body: "lunch?"})
	msgs, _, _ := corpHost.seen()
	if len(msgs) != 1 || msgs[0].Body != "lunch?" || !msgs[0].From.Equal(samDesk) {
		t.Fatalf("bob got %+v", msgs)
	}
	out, err := corp.Outbound(ctx, &translate.Message{From: bob, To: sam, Body: "yes"})
	if err != nil || len(out) != 1 || parse(t, out[0]).To != samDesk.String() {
		t.Fatalf("reply %q, %v; want one stanza to %v", out, err, samDesk)
	}
	deliver(lab, out)
	if msgs, _, _ := labHost.seen(); len(msgs) != 1 || msgs[0].Body != "yes" || !msgs[0].From.Equal(bob) {
		t.Errorf("sam got %+v", msgs)
	}

	// Bob goes offline: sam sees Offline; the stream drops: bob sees sam
	// Unknown; it comes back: the probe brings sam's presence again.
	send(corp, lab, &translate.Presence{From: bob, Availability: translate.Offline})
	if _, pres, _ := labHost.seen(); pres[len(pres)-1].Availability != translate.Offline {
		t.Errorf("sam sees %+v; want bob Offline", pres[len(pres)-1])
	}
	corpHost.reset()
	if err := corp.StreamDown(ctx, "lab.example"); err != nil {
		t.Fatal(err)
	}
	if _, pres, _ := corpHost.seen(); len(pres) != 1 || pres[0].Availability != translate.Unknown {
		t.Errorf("after stream loss bob sees %+v; want Unknown", pres)
	}
	probes, err := corp.StreamUp(ctx, "lab.example")
	if err != nil || len(probes) != 1 {
		t.Fatalf("StreamUp: %q, %v", probes, err)
	}
	corpHost.reset()
	deliver(lab, probes)
	if _, pres, _ := corpHost.seen(); len(pres) != 1 || pres[0].Availability != translate.Available {
		t.Errorf("after reconnect bob sees %+v; want sam Available", pres)
	}
}
