package federation_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
	"github.com/xmppfed/xmppfed/translate"
)

func TestSelfTestBetweenDomains(t *testing.T) {
	w := newCheckWorld(t)
	a := w.server("contoso.example", "contoso.example", policy.Partner{Domain: "fabrikam.example"})
	w.server("fabrikam.example", "fabrikam.example", policy.Partner{Domain: "contoso.example"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := a.SelfTest(ctx, jid.MustParse("contoso.example"), jid.MustParse("fabrikam.example"))
	if err != nil {
		t.Fatal(err)
	}
	dumpStages(t, rep.Stages)
	if !rep.OK() {
		t.Fatal("not OK")
	}
	if got, want := stageNames(rep.Stages), "policy,dns,connect/auth,delivery,reply"; got != want {
		t.Fatalf("stages %s, want %s", got, want)
	}
	if d := rep.Stages[2].Detail; !strings.Contains(d, "outbound stream, sasl-external over TLS 1.3") || !strings.Contains(d, `identity SRV-ID "_xmpp-server.fabrikam.example"`) {
		t.Errorf("connect/auth detail %q", d)
	}
	if d := rep.Stages[4].Detail; d != "result (pong)" {
		t.Errorf("reply detail %q", d)
	}
	// The stream the test opened is the real Server's and stays.
	if n := len(a.Stats().Streams); n != 1 {
		t.Errorf("%d streams after the self-test, want 1", n)
	}

	// A second run uses the established stream.
	rep2, err := a.SelfTest(ctx, jid.MustParse("contoso.example"), jid.MustParse("fabrikam.example"))
	if err != nil || !rep2.OK() {
		dumpStages(t, rep2.Stages)
		t.Fatalf("second run: %v", err)
	}
	if n := len(a.Stats().Streams); n != 1 {
		t.Errorf("%d streams after the second self-test, want 1", n)
	}
}

// TestSelfTestUnknownUser: a ping from a user to a user who does not exist
// comes back as an error reply; the path works, the condition is reported.
func TestSelfTestUnknownUser(t *testing.T) {
	w := newCheckWorld(t)
	a := w.server("contoso.example", "contoso.example", policy.Partner{Domain: "fabrikam.example"})
	w.server("fabrikam.example", "fabrikam.example", policy.Partner{Domain: "contoso.example"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := a.SelfTest(ctx, jid.MustParse("alice@contoso.example"), jid.MustParse("nobody@fabrikam.example"))
	if err != nil {
		t.Fatal(err)
	}
	dumpStages(t, rep.Stages)
	if !rep.OK() {
		t.Fatal("not OK")
	}
	reply := rep.Stages[len(rep.Stages)-1]
	if reply.Name != "reply" || !strings.Contains(reply.Detail, "error reply service-unavailable from nobody@fabrikam.example") {
		t.Errorf("reply %+v", reply)
	}
}

func TestSelfTestNotPartner(t *testing.T) {
	w := newCheckWorld(t)
	a := w.server("contoso.example", "contoso.example", policy.Partner{Domain: "fabrikam.example"})
	rep, err := a.SelfTest(context.Background(), jid.MustParse("alice@contoso.example"), jid.MustParse("bob@stranger.example"))
	if err != nil {
		t.Fatal(err)
	}
	dumpStages(t, rep.Stages)
	if rep.OK() || stageNames(rep.Stages) != "policy" {
		t.Fatalf("stages %s", stageNames(rep.Stages))
	}
	var d *policy.Denial
	if !errors.As(rep.Stages[0].Err, &d) || d.Rule != policy.RuleNotPartner {
		t.Errorf("policy err %v", rep.Stages[0].Err)
	}

	// A local user without XMPP access is refused at the policy stage too.
	rep, err = a.SelfTest(context.Background(), jid.MustParse("mallory@contoso.example"), jid.MustParse("fabrikam.example"))
	if err != nil {
		t.Fatal(err)
	}
	if !errors.As(rep.Stages[0].Err, &d) || d.Rule != policy.RuleUnknownUser {
		t.Errorf("unknown local user: %v", rep.Stages[0].Err)
	}
	// And a from that is not ours.
	rep, err = a.SelfTest(context.Background(), jid.MustParse("fabrikam.example"), jid.MustParse("fabrikam.example"))
	if err != nil || rep.OK() || !strings.Contains(rep.Stages[0].Err.Error(), "not one of the Server's Domains") {
		t.Errorf("foreign from: %v %+v", err, rep.Stages)
	}
}

func TestSelfTestDeadDomain(t *testing.T) {
	w := newCheckWorld(t)
	a := w.server("contoso.example", "contoso.example", policy.Partner{Domain: "dead.example"})
	w.deadDomain("dead.example")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := a.SelfTest(ctx, jid.MustParse("contoso.example"), jid.MustParse("dead.example"))
	if err != nil {
		t.Fatal(err)
	}
	dumpStages(t, rep.Stages)
	if got := stageNames(rep.Stages); got != "policy,dns,connect/auth" {
		t.Fatalf("stages %s", got)
	}
	var ne *s2s.NegotiationError
	if st := rep.Stages[2]; st.OK || !errors.As(st.Err, &ne) || ne.Step != "connect" {
		t.Errorf("connect/auth %+v", st)
	}
	if rep.OK() {
		t.Error("OK")
	}
}

func TestSelfTestClosed(t *testing.T) {
	w := newCheckWorld(t)
	a := w.server("contoso.example", "contoso.example", policy.Partner{Domain: "fabrikam.example"})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := a.SelfTest(context.Background(), jid.MustParse("contoso.example"), jid.MustParse("fabrikam.example"))
	if !errors.Is(err, federation.ErrServerClosed) || rep.OK() {
		t.Errorf("closed server: %v", err)
	}
}

// SelfTest reports each stage of the path a ping takes; here the remote
// domain is not a partner, so the path ends at the policy.
func ExampleServer_SelfTest() {
	pol, err := policy.New(context.Background(), policy.NewMemStore(&policy.Config{
		Partners: []policy.Partner{{Domain: "fabrikam.example"}},
		Policies: []policy.AccessPolicy{{Name: policy.GlobalPolicy, EnableXMPPAccess: true}},
	}), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &federation.Server{
		Domains: []string{"contoso.example"},
		Policy:  pol,
		Backend: checkBackend{new(translate.MemRoster), new(policy.UserTable)},
	}
	defer srv.Close()
	rep, err := srv.SelfTest(context.Background(), jid.MustParse("contoso.example"), jid.MustParse("stranger.example"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("OK:", rep.OK())
	for _, st := range rep.Stages {
		fmt.Printf("%s ok=%v: %v\n", st.Name, st.OK, st.Err)
	}
	// Output:
	// OK: false
	// policy ok=false: policy: domain "stranger.example" is not a federation partner
}
