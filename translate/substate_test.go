package translate_test

import (
	"testing"

	"github.com/xmppfed/xmppfed/translate"
)

// Short names for the table below.
const (
	sNone   = translate.None
	sNPO    = translate.NonePendingOut
	sNPI    = translate.NonePendingIn
	sNPOI   = translate.NonePendingOutIn
	sTo     = translate.To
	sToPI   = translate.ToPendingIn
	sFrom   = translate.From
	sFromPO = translate.FromPendingOut
	sBoth   = translate.Both

	aSub    = translate.Subscribe
	aSubd   = translate.Subscribed
	aUnsub  = translate.Unsubscribe
	aUnsubd = translate.Unsubscribed
)

// TestSubStateTables checks every row of RFC 6121 Appendix A: 9 states x 4
// actions x 2 directions, copied from the RFC's tables ("pass" is ROUTE? for
// outbound stanzas and DELIVER? for inbound ones; MUST is true, MUST NOT
// false; "no state change" rows repeat the state).
func TestSubStateTables(t *testing.T) {
	type row struct {
		from    translate.SubState
		action  translate.SubscriptionAction
		inbound bool
		next    translate.SubState
		pass    bool
	}
	const out, in = false, true
	rows := []row{
		// A.2.1 outbound subscribe
		{sNone, aSub, out, sNPO, true},      // A.2.1 None
		{sNPO, aSub, out, sNPO, true},       // A.2.1 None + Pending Out
		{sNPI, aSub, out, sNPOI, true},      // A.2.1 None + Pending In
		{sNPOI, aSub, out, sNPOI, true},     // A.2.1 None + Pending Out+In
		{sTo, aSub, out, sTo, true},         // A.2.1 To
		{sToPI, aSub, out, sToPI, true},     // A.2.1 To + Pending In
		{sFrom, aSub, out, sFromPO, true},   // A.2.1 From
		{sFromPO, aSub, out, sFromPO, true}, // A.2.1 From + Pending Out
		{sBoth, aSub, out, sBoth, true},     // A.2.1 Both
		// A.2.2 outbound unsubscribe
		{sNone, aUnsub, out, sNone, true},   // A.2.2 None
		{sNPO, aUnsub, out, sNone, true},    // A.2.2 None + Pending Out
		{sNPI, aUnsub, out, sNPI, true},     // A.2.2 None + Pending In
		{sNPOI, aUnsub, out, sNPI, true},    // A.2.2 None + Pending Out+In
		{sTo, aUnsub, out, sNone, true},     // A.2.2 To
		{sToPI, aUnsub, out, sNPI, true},    // A.2.2 To + Pending In
		{sFrom, aUnsub, out, sFrom, true},   // A.2.2 From
		{sFromPO, aUnsub, out, sFrom, true}, // A.2.2 From + Pending Out
		{sBoth, aUnsub, out, sFrom, true},   // A.2.2 Both
		// A.2.3 outbound subscribed
		{sNone, aSubd, out, sNone, false},     // A.2.3 None (pre-approval, not kept)
		{sNPO, aSubd, out, sNPO, false},       // A.2.3 None + Pending Out (pre-approval, not kept)
		{sNPI, aSubd, out, sFrom, true},       // A.2.3 None + Pending In
		{sNPOI, aSubd, out, sFromPO, true},    // A.2.3 None + Pending Out+In
		{sTo, aSubd, out, sTo, false},         // A.2.3 To (pre-approval, not kept)
		{sToPI, aSubd, out, sBoth, true},      // A.2.3 To + Pending In
		{sFrom, aSubd, out, sFrom, false},     // A.2.3 From
		{sFromPO, aSubd, out, sFromPO, false}, // A.2.3 From + Pending Out
		{sBoth, aSubd, out, sBoth, false},     // A.2.3 Both
		// A.2.4 outbound unsubscribed
		{sNone, aUnsubd, out, sNone, false}, // A.2.4 None
		{sNPO, aUnsubd, out, sNPO, false},   // A.2.4 None + Pending Out
		{sNPI, aUnsubd, out, sNone, true},   // A.2.4 None + Pending In
		{sNPOI, aUnsubd, out, sNPO, true},   // A.2.4 None + Pending Out+In
		{sTo, aUnsubd, out, sTo, false},     // A.2.4 To
		{sToPI, aUnsubd, out, sTo, true},    // A.2.4 To + Pending In
		{sFrom, aUnsubd, out, sNone, true},  // A.2.4 From
		{sFromPO, aUnsubd, out, sNPO, true}, // A.2.4 From + Pending Out
		{sBoth, aUnsubd, out, sTo, true},    // A.2.4 Both
		// A.3.1 inbound subscribe
		{sNone, aSub, in, sNPI, true},       // A.3.1 None
		{sNPO, aSub, in, sNPOI, true},       // A.3.1 None + Pending Out
		{sNPI, aSub, in, sNPI, false},       // A.3.1 None + Pending In
		{sNPOI, aSub, in, sNPOI, false},     // A.3.1 None + Pending Out+In
		{sTo, aSub, in, sToPI, true},        // A.3.1 To
		{sToPI, aSub, in, sToPI, false},     // A.3.1 To + Pending In
		{sFrom, aSub, in, sFrom, false},     // A.3.1 From (auto-reply, note 2)
		{sFromPO, aSub, in, sFromPO, false}, // A.3.1 From + Pending Out (auto-reply, note 2)
		{sBoth, aSub, in, sBoth, false},     // A.3.1 Both (auto-reply, note 2)
		// A.3.2 inbound unsubscribe
		{sNone, aUnsub, in, sNone, false}, // A.3.2 None
		{sNPO, aUnsub, in, sNPO, false},   // A.3.2 None + Pending Out
		{sNPI, aUnsub, in, sNone, true},   // A.3.2 None + Pending In
		{sNPOI, aUnsub, in, sNPO, true},   // A.3.2 None + Pending Out+In
		{sTo, aUnsub, in, sTo, false},     // A.3.2 To
		{sToPI, aUnsub, in, sTo, true},    // A.3.2 To + Pending In
		{sFrom, aUnsub, in, sNone, true},  // A.3.2 From
		{sFromPO, aUnsub, in, sNPO, true}, // A.3.2 From + Pending Out
		{sBoth, aUnsub, in, sTo, true},    // A.3.2 Both
		// A.3.3 inbound subscribed
		{sNone, aSubd, in, sNone, false},  // A.3.3 None
		{sNPO, aSubd, in, sTo, true},      // A.3.3 None + Pending Out
		{sNPI, aSubd, in, sNPI, false},    // A.3.3 None + Pending In
		{sNPOI, aSubd, in, sToPI, true},   // A.3.3 None + Pending Out+In
		{sTo, aSubd, in, sTo, false},      // A.3.3 To
		{sToPI, aSubd, in, sToPI, false},  // A.3.3 To + Pending In
		{sFrom, aSubd, in, sFrom, false},  // A.3.3 From
		{sFromPO, aSubd, in, sBoth, true}, // A.3.3 From + Pending Out
		{sBoth, aSubd, in, sBoth, false},  // A.3.3 Both
		// A.3.4 inbound unsubscribed
		{sNone, aUnsubd, in, sNone, false},  // A.3.4 None
		{sNPO, aUnsubd, in, sNone, true},    // A.3.4 None + Pending Out
		{sNPI, aUnsubd, in, sNPI, false},    // A.3.4 None + Pending In
		{sNPOI, aUnsubd, in, sNPI, true},    // A.3.4 None + Pending Out+In
		{sTo, aUnsubd, in, sNone, true},     // A.3.4 To
		{sToPI, aUnsubd, in, sNPI, true},    // A.3.4 To + Pending In
		{sFrom, aUnsubd, in, sFrom, false},  // A.3.4 From
		{sFromPO, aUnsubd, in, sFrom, true}, // A.3.4 From + Pending Out
		{sBoth, aUnsubd, in, sFrom, true},   // A.3.4 Both
	}
	if len(rows) != 72 {
		t.Fatalf("%d rows; the RFC has 72", len(rows))
	}
	seen := make(map[row]bool)
	for _, r := range rows {
		key := row{from: r.from, action: r.action, inbound: r.inbound}
		if seen[key] {
			t.Fatalf("duplicate row %v %v inbound=%v", r.from, r.action, r.inbound)
		}
		seen[key] = true
		var next translate.SubState
		var pass bool
		dir := "outbound"
		if r.inbound {
			dir = "inbound"
			next, pass = r.from.Inbound(r.action)
		} else {
			next, pass = r.from.Outbound(r.action)
		}
		if next != r.next || pass != r.pass {
			t.Errorf("%s %v in %q: %q, %v; want %q, %v", dir, r.action, r.from, next, pass, r.next, r.pass)
		}
	}
}

// TestSubStateAutoReply checks RFC 6121 §3.1.3: an inbound subscribe from a
// contact who already sees the user is answered subscribed by the server,
// and nothing else is answered automatically.
func TestSubStateAutoReply(t *testing.T) {
	states := []translate.SubState{sNone, sNPO, sNPI, sNPOI, sTo, sToPI, sFrom, sFromPO, sBoth}
	actions := []translate.SubscriptionAction{aSub, aSubd, aUnsub, aUnsubd}
	for _, s := range states {
		for _, a := range actions {
			reply, ok := s.AutoReply(a)
			want := a == aSub && (s == sFrom || s == sFromPO || s == sBoth)
			if ok != want {
				t.Errorf("%q AutoReply(%v) = %v, %v; want ok=%v", s, a, reply, ok, want)
			}
			if ok && reply != aSubd {
				t.Errorf("%q AutoReply(%v) = %v; want subscribed", s, a, reply)
			}
			if ok {
				// The auto-answered rows are "no state change, MUST NOT deliver".
				if next, deliver := s.Inbound(a); next != s || deliver {
					t.Errorf("%q inbound %v: %q, %v; want no change, no delivery", s, a, next, deliver)
				}
			}
		}
	}
}

// TestSubStateString checks RFC 6121's names and the fallback for values
// out of range, which change nothing and pass nothing.
func TestSubStateString(t *testing.T) {
	for s, want := range map[translate.SubState]string{
		sNone:   "None",
		sNPO:    "None + Pending Out",
		sNPI:    "None + Pending In",
		sNPOI:   "None + Pending Out + Pending In",
		sTo:     "To",
		sToPI:   "To + Pending In",
		sFrom:   "From",
		sFromPO: "From + Pending Out",
		sBoth:   "Both",
		42:      "SubState(42)",
	} {
		if got := s.String(); got != want {
			t.Errorf("SubState(%d).String() = %q; want %q", uint8(s), got, want)
		}
	}
	bad := translate.SubState(42)
	for _, a := range []translate.SubscriptionAction{0, aSub, aSubd, aUnsub, aUnsubd, 9} {
		if next, pass := bad.Inbound(a); next != bad || pass {
			t.Errorf("invalid state inbound %v: %v, %v", a, next, pass)
		}
		if next, pass := bad.Outbound(a); next != bad || pass {
			t.Errorf("invalid state outbound %v: %v, %v", a, next, pass)
		}
	}
	for _, a := range []translate.SubscriptionAction{0, 9} {
		if next, pass := sTo.Inbound(a); next != sTo || pass {
			t.Errorf("To inbound action %d: %v, %v", a, next, pass)
		}
		if next, pass := sFrom.Outbound(a); next != sFrom || pass {
			t.Errorf("From outbound action %d: %v, %v", a, next, pass)
		}
	}
}

// TestSubStateInvariants walks every state and action: SeesContact and
// ContactSees change only as the RFC says each action may change them.
func TestSubStateInvariants(t *testing.T) {
	states := []translate.SubState{sNone, sNPO, sNPI, sNPOI, sTo, sToPI, sFrom, sFromPO, sBoth}
	for _, s := range states {
		// Only the contact's subscribed makes the user see the contact;
		// only the user's subscribed lets the contact see the user.
		for _, a := range []translate.SubscriptionAction{aSub, aUnsub, aUnsubd} {
			if n, _ := s.Inbound(a); n.SeesContact() && !s.SeesContact() {
				t.Errorf("inbound %v from %q gave sight of the contact (%q)", a, s, n)
			}
		}
		for _, a := range []translate.SubscriptionAction{aSub, aUnsub, aUnsubd} {
			if n, _ := s.Outbound(a); n.ContactSees() && !s.ContactSees() {
				t.Errorf("outbound %v from %q authorized the contact (%q)", a, s, n)
			}
		}
	}
}
