package translate

import "strconv"

// This file holds RFC 6121's subscription state machine (§3 and Appendix
// A). The tables are written out row by row, as the RFC gives them, so
// that each transition can be checked against the appendix by eye.

// String returns RFC 6121's name for the state ("None + Pending Out").
func (s SubState) String() string {
	switch s {
	case None:
		return "None"
	case NonePendingOut:
		return "None + Pending Out"
	case NonePendingIn:
		return "None + Pending In"
	case NonePendingOutIn:
		return "None + Pending Out + Pending In"
	case To:
		return "To"
	case ToPendingIn:
		return "To + Pending In"
	case From:
		return "From"
	case FromPendingOut:
		return "From + Pending Out"
	case Both:
		return "Both"
	}
	return "SubState(" + strconv.Itoa(int(s)) + ")"
}

// valid reports whether s is one of the nine states.
func (s SubState) valid() bool { return s <= Both }

// transition is one row of an RFC 6121 Appendix A table: the new state and
// whether the stanza is routed (outbound) or delivered (inbound).
type transition struct {
	next SubState
	pass bool
}

// keep is a "no state change" row.
func keep(s SubState, pass bool) transition { return transition{s, pass} }

// outboundRow returns the Appendix A.2 row for a in state s. The user's
// server processes a stanza its user sends to the contact.
func outboundRow(s SubState, a SubscriptionAction) transition {
	switch a {
	case Subscribe: // A.2.1: always routed (MUST).
		switch s {
		case None:
			return transition{NonePendingOut, true}
		case NonePendingIn:
			return transition{NonePendingOutIn, true}
		case From:
			return transition{FromPendingOut, true}
		}
		return keep(s, true)
	case Unsubscribe: // A.2.2: always routed (MUST).
		switch s {
		case NonePendingOut, To:
			return transition{None, true}
		case NonePendingOutIn, ToPendingIn:
			return transition{NonePendingIn, true}
		case FromPendingOut, Both:
			return transition{From, true}
		}
		return keep(s, true)
	case Subscribed: // A.2.3: routed only when it approves a pending in.
		switch s {
		case NonePendingIn:
			return transition{From, true}
		case NonePendingOutIn:
			return transition{FromPendingOut, true}
		case ToPendingIn:
			return transition{Both, true}
		}
		// None, None + Pending Out, To: the RFC's optional
		// pre-approval (§3.4), which we do not keep; From, From +
		// Pending Out, Both: already approved. MUST NOT route.
		return keep(s, false)
	case Unsubscribed: // A.2.4: routed only when it removes something.
		switch s {
		case NonePendingIn, From:
			return transition{None, true}
		case NonePendingOutIn, FromPendingOut:
			return transition{NonePendingOut, true}
		case ToPendingIn, Both:
			return transition{To, true}
		}
		return keep(s, false)
	}
	return keep(s, false)
}

// inboundRow returns the Appendix A.3 row for a in state s. The user's
// server processes a stanza the contact sent to the user.
func inboundRow(s SubState, a SubscriptionAction) transition {
	switch a {
	case Subscribe: // A.3.1
		switch s {
		case None:
			return transition{NonePendingIn, true}
		case NonePendingOut:
			return transition{NonePendingOutIn, true}
		case To:
			return transition{ToPendingIn, true}
		}
		// Already pending in: MUST NOT deliver again. From, From +
		// Pending Out, Both: the server answers subscribed itself
		// (§3.1.3, see AutoReply).
		return keep(s, false)
	case Unsubscribe: // A.3.2
		switch s {
		case NonePendingIn, From:
			return transition{None, true}
		case NonePendingOutIn, FromPendingOut:
			return transition{NonePendingOut, true}
		case ToPendingIn, Both:
			return transition{To, true}
		}
		return keep(s, false)
	case Subscribed: // A.3.3: only when the user asked (pending out).
		switch s {
		case NonePendingOut:
			return transition{To, true}
		case NonePendingOutIn:
			return transition{ToPendingIn, true}
		case FromPendingOut:
			return transition{Both, true}
		}
		return keep(s, false)
	case Unsubscribed: // A.3.4
		switch s {
		case NonePendingOut, To:
			return transition{None, true}
		case NonePendingOutIn, ToPendingIn:
			return transition{NonePendingIn, true}
		case FromPendingOut, Both:
			return transition{From, true}
		}
		return keep(s, false)
	}
	return keep(s, false)
}

// Outbound returns the state after the local user sends a (RFC 6121
// Appendix A.2 and A.3, user's server processing an outbound stanza), and
// whether the stanza goes out to the contact.
//
// An outbound subscribed in a state with no pending inbound request is the
// RFC's optional pre-approval (§3.4), which is not kept: no state change,
// nothing sent. A state or action out of range changes nothing and sends
// nothing.
func (s SubState) Outbound(a SubscriptionAction) (next SubState, send bool) {
	if !s.valid() {
		return s, false
	}
	r := outboundRow(s, a)
	return r.next, r.pass
}

// Inbound returns the state after a arrives from the contact (RFC 6121
// Appendix A.2 and A.3, contact's server processing an inbound stanza), and
// whether it is delivered to the local user.
//
// A row that says "MUST NOT deliver" (a subscribed with nothing pending
// out, a repeated subscribe, ...) returns deliver false and the state
// unchanged; the one such row that calls for an answer is reported by
// AutoReply. A state or action out of range changes nothing.
func (s SubState) Inbound(a SubscriptionAction) (next SubState, deliver bool) {
	if !s.valid() {
		return s, false
	}
	r := inboundRow(s, a)
	return r.next, r.pass
}

// AutoReply reports whether the local user's server answers an inbound a
// by itself, and with what: a subscribe from a contact already authorized
// to see the user (From, From + Pending Out, Both) is answered subscribed
// without involving the user (RFC 6121 §3.1.3 and Appendix A.3.1 note 2).
// Every other case has no automatic answer (ok false).
func (s SubState) AutoReply(a SubscriptionAction) (reply SubscriptionAction, ok bool) {
	if a == Subscribe && s.ContactSees() {
		return Subscribed, true
	}
	return 0, false
}
