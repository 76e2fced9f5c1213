package policy_test

import (
	"context"
	"testing"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/policy"
)

// TestInbound checks the partner-type rules (REFERENCE §4.3, §5.6 #65-70)
// for every type, action and authorization, with both
// DenyUnverifiedSubscriptions values.
func TestInbound(t *testing.T) {
	ctx := context.Background()
	const (
		deliver = policy.Deliver
		approve = policy.AutoApprove
		hold    = policy.Hold
		deny    = policy.Deny
	)
	type want struct {
		verdict policy.Verdict
		note    bool
	}
	for _, tc := range []struct {
		from   string // domain: fed.com Federated, ver.com PublicVerified, unv.com PublicUnverified
		action policy.Action
		authz  bool
		keep   want // DenyUnverifiedSubscriptions false
		strict want // DenyUnverifiedSubscriptions true
	}{
		// #65, #69: Federated.
		{"fed.com", policy.ActSubscribe, false, want{approve, true}, want{approve, true}},
		{"fed.com", policy.ActSubscribe, true, want{approve, true}, want{approve, true}},
		{"fed.com", policy.ActMessage, false, want{deliver, true}, want{deliver, true}},
		{"fed.com", policy.ActMessage, true, want{deliver, true}, want{deliver, true}},
		{"fed.com", policy.ActProbe, false, want{deny, false}, want{deny, false}},
		{"fed.com", policy.ActProbe, true, want{deliver, true}, want{deliver, true}},
		// #66, #69: PublicVerified: as Federated, without the note.
		{"ver.com", policy.ActSubscribe, false, want{approve, false}, want{approve, false}},
		{"ver.com", policy.ActMessage, false, want{deliver, false}, want{deliver, false}},
		{"ver.com", policy.ActProbe, false, want{deny, false}, want{deny, false}},
		{"ver.com", policy.ActProbe, true, want{deliver, false}, want{deliver, false}},
		// #67, #68, #70: PublicUnverified.
		{"unv.com", policy.ActSubscribe, false, want{hold, false}, want{deny, false}},
		{"unv.com", policy.ActSubscribe, true, want{approve, false}, want{approve, false}},
		{"unv.com", policy.ActMessage, false, want{deny, false}, want{deny, false}},
		{"unv.com", policy.ActMessage, true, want{deliver, false}, want{deliver, false}},
		{"unv.com", policy.ActProbe, false, want{deny, false}, want{deny, false}},
		{"unv.com", policy.ActProbe, true, want{deliver, false}, want{deliver, false}},
	} {
		for _, denyUnverified := range []bool{false, true} {
			c := &policy.Config{
				Gateway: policy.Gateway{DenyUnverifiedSubscriptions: denyUnverified},
				Partners: []policy.Partner{
					{Domain: "fed.com", Type: policy.Federated},
					{Domain: "ver.com", Type: policy.PublicVerified},
					{Domain: "unv.com", Type: policy.PublicUnverified},
				},
				Policies: []policy.AccessPolicy{{Name: "global", EnableXMPPAccess: true, EnableFederationAccess: true}},
			}
			p, _ := newPolicy(t, c, nil)
			w := tc.keep
			if denyUnverified {
				w = tc.strict
			}
			req := policy.Request{Action: tc.action, From: jid.MustParse("someone@" + tc.from + "/res"), To: alice, Authorized: tc.authz}
			dec, err := p.Inbound(ctx, req)
			if err != nil {
				t.Fatalf("%+v: %v", req, err)
			}
			if dec.Verdict != w.verdict || dec.ShareNote != w.note {
				t.Errorf("%s action %d authorized=%v deny=%v: %+v; want %v note=%v", tc.from, tc.action, tc.authz, denyUnverified, dec, w.verdict, w.note)
			}
			if dec.Verdict == deny {
				d := denial(t, dec.Err, policy.RuleNotAuthorized)
				if se := d.StanzaError(); se.Condition != stanza.Forbidden || d.Domain != tc.from {
					t.Errorf("refusal %+v: %+v; want forbidden for %s", d, se, tc.from)
				}
			} else if dec.Err != nil {
				t.Errorf("verdict %v with error %v", dec.Verdict, dec.Err)
			}
		}
	}
}

// TestInboundRefusals checks the refusals that come before the partner
// type: unknown domain, user without access (#59), bad action.
func TestInboundRefusals(t *testing.T) {
	ctx := context.Background()
	users := new(policy.UserTable)
	users.Set(alice, policy.User{Policy: "On"})
	users.Set(bob, policy.User{})
	c := &policy.Config{
		Partners: []policy.Partner{{Domain: "fed.com", Type: policy.Federated}},
		Policies: []policy.AccessPolicy{{Name: "On", EnableXMPPAccess: true, EnableFederationAccess: true}},
	}
	p, _ := newPolicy(t, c, &policy.Options{Directory: users})
	for _, tc := range []struct {
		from, to jid.JID
		rule     policy.Rule
	}{
		{jid.MustParse("x@other.com"), alice, policy.RuleNotPartner},
		{jid.JID{}, alice, policy.RuleInvalidDomain},
		{jid.MustParse("x@fed.com"), bob, policy.RuleNoXMPPAccess},
		{jid.MustParse("x@fed.com"), eve, policy.RuleUnknownUser},
	} {
		for _, a := range []policy.Action{policy.ActMessage, policy.ActSubscribe, policy.ActProbe} {
			dec, err := p.Inbound(ctx, policy.Request{Action: a, From: tc.from, To: tc.to, Authorized: true})
			if err != nil || dec.Verdict != policy.Deny {
				t.Fatalf("%v -> %v: %+v, %v; want Deny", tc.from, tc.to, dec, err)
			}
			denial(t, dec.Err, tc.rule)
		}
	}
	if _, err := p.Inbound(ctx, policy.Request{Action: 0, From: jid.MustParse("x@fed.com"), To: alice}); err == nil {
		t.Error("Inbound accepted Action 0")
	}
	dec, err := p.Inbound(ctx, policy.Request{Action: policy.ActMessage, From: jid.MustParse("x@fed.com"), To: alice})
	if err != nil || dec.Verdict != policy.Deliver || !dec.ShareNote {
		t.Errorf("allowed message: %+v, %v", dec, err)
	}
}
