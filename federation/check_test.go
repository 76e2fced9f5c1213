package federation_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
	"github.com/xmppfed/xmppfed/translate"
)

// checkBackend is the smallest host: every user known to its table exists,
// nothing is delivered anywhere.
type checkBackend struct {
	*translate.MemRoster
	*policy.UserTable
}

func (checkBackend) DeliverMessage(context.Context, *translate.Message) error           { return nil }
func (checkBackend) DeliverPresence(context.Context, *translate.Presence) error         { return nil }
func (checkBackend) DeliverSubscription(context.Context, *translate.Subscription) error { return nil }
func (checkBackend) CurrentPresence(context.Context, jid.JID) (*translate.Presence, error) {
	return nil, translate.ErrUnknownUser
}
func (checkBackend) Bounce(context.Context, translate.Stanza, stanza.Error) {}

// checkWorld is a loopback federation: one DNS server, one CA, Servers
// published in DNS as they start.
type checkWorld struct {
	t   *testing.T
	ca  *certs.TestCA
	dns *dnsdiscotest.Server
}

func newCheckWorld(t *testing.T) *checkWorld {
	t.Helper()
	ca, err := certs.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	w := &checkWorld{t: t, ca: ca, dns: dnsdiscotest.NewServer()}
	t.Cleanup(w.dns.Close)
	return w
}

// server starts a federation.Server for domain, presenting a certificate
// for certDomain, federating with partners, with alice@domain a user with
// XMPP access, published as domain's _xmpp-server SRV record.
func (w *checkWorld) server(domain, certDomain string, partners ...policy.Partner) *federation.Server {
	t := w.t
	t.Helper()
	cert, err := w.ca.IssueDomain(certDomain)
	if err != nil {
		t.Fatal(err)
	}
	users := new(policy.UserTable)
	users.Set(jid.MustParse("alice@"+domain), policy.User{})
	pol, err := policy.New(context.Background(), policy.NewMemStore(&policy.Config{
		Partners: partners,
		Policies: []policy.AccessPolicy{{Name: policy.GlobalPolicy, EnableXMPPAccess: true, EnableFederationAccess: true}},
	}), &policy.Options{Directory: users})
	if err != nil {
		t.Fatal(err)
	}
	srv := &federation.Server{
		Domains:   []string{domain},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Verify:    certs.VerifyOptions{Roots: w.ca.Pool()},
		Resolver:  w.dns.Resolver(),
		Policy:    pol,
		Backend:   checkBackend{new(translate.MemRoster), users},
		Limits:    s2s.Limits{DialTimeout: 2 * time.Second},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown %s: %v", domain, err)
		}
		if err := <-done; !errors.Is(err, federation.ErrServerClosed) {
			t.Errorf("Serve %s: %v", domain, err)
		}
	})
	host := "xmpp." + domain
	w.dns.AddSRV("_xmpp-server._tcp", domain, host, uint16(l.Addr().(*net.TCPAddr).Port), 0, 0)
	w.dns.AddHost(host, netip.MustParseAddr("127.0.0.1"))
	return srv
}

// deadDomain publishes domain with an SRV record to a closed loopback port.
func (w *checkWorld) deadDomain(domain string) string {
	w.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	host := "xmpp." + domain
	w.dns.AddSRV("_xmpp-server._tcp", domain, host, port, 0, 0)
	w.dns.AddHost(host, netip.MustParseAddr("127.0.0.1"))
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String()
}

func stageNames(st []federation.Stage) string {
	var n []string
	for _, s := range st {
		n = append(n, s.Name)
	}
	return strings.Join(n, ",")
}

func dumpStages(t *testing.T, st []federation.Stage) {
	t.Helper()
	for _, s := range st {
		t.Logf("%-12s %-22s ok=%v detail=%q err=%v", s.Name, s.Target, s.OK, s.Detail, s.Err)
	}
}

func TestCheckHealthy(t *testing.T) {
	w := newCheckWorld(t)
	a := w.server("contoso.example", "contoso.example", policy.Partner{Domain: "fabrikam.example", Type: policy.Federated})
	b := w.server("fabrikam.example", "fabrikam.example", policy.Partner{Domain: "contoso.example"})

	// A real stream first: Check must leave it alone.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := federation.SendIQ(a, ctx, jid.MustParse("contoso.example"), jid.MustParse("fabrikam.example"), []byte("<ping xmlns='urn:xmpp:ping'/>")); err != nil {
		t.Fatalf("ping before the check: %v", err)
	}
	before := a.Stats().Streams
	if len(before) == 0 {
		t.Fatal("no stream after the ping")
	}

	rep, err := a.Check(ctx, "fabrikam.example")
	if err != nil {
		t.Fatal(err)
	}
	dumpStages(t, rep.Stages)
	if !rep.OK() {
		t.Fatalf("healthy partner: not OK")
	}
	if got, want := stageNames(rep.Stages), "policy,dns,tcp,tls,certificate,features,auth"; got != want {
		t.Errorf("stages %s, want %s", got, want)
	}
	if rep.Partner == nil || rep.Partner.Partner != "fabrikam.example" || rep.Partner.Type != policy.Federated || rep.Refused != nil {
		t.Errorf("partner %+v refused %v", rep.Partner, rep.Refused)
	}
	if len(rep.Targets) != 1 || rep.Targets[0].Host != "xmpp.fabrikam.example" {
		t.Errorf("targets %+v", rep.Targets)
	}
	for name, want := range map[string]string{
		"policy":      "expected methods: SASL over TLS",
		"dns":         "xmpp.fabrikam.example",
		"tls":         "STARTTLS, TLS 1.",
		"certificate": `matched SRV-ID "_xmpp-server.fabrikam.example"`,
		"features":    "usable: SASL over TLS",
		"auth":        "authenticated with sasl-external over TLS 1.3, peer identity SRV-ID \"_xmpp-server.fabrikam.example\", bidi; ping answered",
	} {
		if st := rep.Stage(name, ""); st == nil || !strings.Contains(st.Detail, want) {
			t.Errorf("%s stage detail lacks %q: %+v", name, want, st)
		}
	}
	if !strings.Contains(rep.Stage("features", "").Detail, "SASL EXTERNAL") {
		t.Errorf("features: %q", rep.Stage("features", "").Detail)
	}
	// The real stream is still there, the same one; the throwaway one is
	// not the real Server's.
	if len(rep.Streams) != len(before) {
		t.Errorf("report streams %d, want %d", len(rep.Streams), len(before))
	}
	after := a.Stats().Streams
	if len(after) != len(before) || !after[0].Since.Equal(before[0].Since) || after[0].RemoteAddr != before[0].RemoteAddr {
		t.Errorf("established streams disturbed:\nbefore %+v\nafter  %+v", before, after)
	}
	if rep.LastFailure != nil {
		t.Errorf("last failure %v", rep.LastFailure)
	}
	_ = b
}

func TestCheckRefused(t *testing.T) {
	w := newCheckWorld(t)
	a := w.server("contoso.example", "contoso.example", policy.Partner{Domain: "fabrikam.example"})
	rep, err := a.Check(context.Background(), "stranger.example")
	if err != nil {
		t.Fatal(err)
	}
	dumpStages(t, rep.Stages)
	if rep.OK() || len(rep.Stages) != 1 || rep.Stages[0].Name != "policy" || rep.Stages[0].OK {
		t.Fatalf("stages %s, want one failed policy stage", stageNames(rep.Stages))
	}
	var d *policy.Denial
	if !errors.As(rep.Refused, &d) || d.Rule != policy.RuleNotPartner || rep.Partner != nil {
		t.Errorf("refused %v, partner %+v", rep.Refused, rep.Partner)
	}
	if !strings.Contains(rep.Stages[0].Detail, "not_partner") {
		t.Errorf("detail %q", rep.Stages[0].Detail)
	}
	if w.dns.QueriesFor("_xmpp-server._tcp.stranger.example.", 33) != 0 {
		t.Error("a refused domain was looked up")
	}
}

func TestCheckNoDNS(t *testing.T) {
	w := newCheckWorld(t)
	a := w.server("contoso.example", "contoso.example", policy.Partner{Domain: "ghost.example"})
	rep, err := a.Check(context.Background(), "ghost.example")
	if err != nil {
		t.Fatal(err)
	}
	dumpStages(t, rep.Stages)
	if got := stageNames(rep.Stages); got != "policy,dns" {
		t.Fatalf("stages %s, want policy,dns", got)
	}
	st := rep.Stages[1]
	var le *dnsdisco.LookupError
	if st.OK || !errors.As(st.Err, &le) || !le.NotFound() {
		t.Fatalf("dns stage %+v", st)
	}
	if !strings.Contains(st.Detail, "remote-server-not-found") {
		t.Errorf("dns detail %q lacks the bounce condition", st.Detail)
	}
}

func TestCheckWrongCertificate(t *testing.T) {
	w := newCheckWorld(t)
	a := w.server("contoso.example", "contoso.example", policy.Partner{Domain: "wrongcert.example"})
	w.server("wrongcert.example", "other.example", policy.Partner{Domain: "contoso.example"})
	rep, err := a.Check(context.Background(), "wrongcert.example")
	if err != nil {
		t.Fatal(err)
	}
	dumpStages(t, rep.Stages)
	st := rep.Stage("certificate", "")
	if st == nil || st.OK {
		t.Fatalf("certificate stage %+v", st)
	}
	var ie *certs.IdentityError
	if !errors.As(st.Err, &ie) || ie.Domain != "wrongcert.example" {
		t.Fatalf("certificate error %v, want *certs.IdentityError", st.Err)
	}
	found := false
	for _, id := range ie.Presented {
		found = found || id.Value == "other.example" || id.Value == "_xmpp-server.other.example"
	}
	if !found || !strings.Contains(st.Err.Error(), "other.example") || !strings.Contains(st.Detail, "other.example") {
		t.Errorf("presented %v; err %v; detail %q", ie.Presented, st.Err, st.Detail)
	}
	if tl := rep.Stage("tls", ""); tl == nil || !tl.OK {
		t.Errorf("tls stage %+v", tl)
	}
	if au := rep.Stage("auth", ""); au == nil || au.OK {
		t.Errorf("auth with a wrong certificate passed: %+v", au)
	}
	if rep.OK() {
		t.Error("report OK")
	}
}

func TestCheckDeadPort(t *testing.T) {
	w := newCheckWorld(t)
	a := w.server("contoso.example", "contoso.example", policy.Partner{Domain: "dead.example"})
	addr := w.deadDomain("dead.example")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := a.Check(ctx, "dead.example")
	if err != nil {
		t.Fatal(err)
	}
	dumpStages(t, rep.Stages)
	if got := stageNames(rep.Stages); got != "policy,dns,tcp,auth" {
		t.Fatalf("stages %s, want policy,dns,tcp,auth", got)
	}
	tcp := rep.Stages[2]
	if tcp.OK || tcp.Target != addr || tcp.Err == nil {
		t.Errorf("tcp stage %+v", tcp)
	}
	au := rep.Stages[3]
	var ne *s2s.NegotiationError
	if au.OK || !errors.As(au.Err, &ne) || ne.Step != "connect" {
		t.Errorf("auth stage %+v, want a connect NegotiationError", au)
	}
}

// TestCheckContextEnded: a Check whose context has ended returns at once
// with ctx's error and the stages it ran.
func TestCheckContextEnded(t *testing.T) {
	w := newCheckWorld(t)
	a := w.server("contoso.example", "contoso.example", policy.Partner{Domain: "fabrikam.example"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep, err := a.Check(ctx, "fabrikam.example")
	if !errors.Is(err, context.Canceled) || rep == nil {
		t.Fatalf("err %v", err)
	}
	if rep.OK() {
		t.Error("a cancelled check is OK")
	}
}

// Check stops at the policy for a domain that is not a partner, and at DNS
// for a partner whose domain has no server.
func ExampleServer_Check() {
	dns := dnsdiscotest.NewServer() // loopback DNS with no records at all
	defer dns.Close()
	pol, err := policy.New(context.Background(), policy.NewMemStore(&policy.Config{
		Partners: []policy.Partner{{Domain: "ghost.example", Type: policy.PublicVerified}},
	}), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &federation.Server{Domains: []string{"contoso.example"}, Policy: pol, Resolver: dns.Resolver()}
	defer srv.Close()

	for _, domain := range []string{"stranger.example", "ghost.example"} {
		rep, err := srv.Check(context.Background(), domain)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s: OK %v\n", domain, rep.OK())
		for _, st := range rep.Stages {
			fmt.Printf("  %s ok=%v: %s\n", st.Name, st.OK, st.Detail)
		}
	}
	// Output:
	// stranger.example: OK false
	//   policy ok=false: refused by rule not_partner; senders get service-unavailable
	// ghost.example: OK false
	//   policy ok=true: partner ghost.example, type public-verified, TLS required, SASL required, dialback on, expected methods: SASL over TLS
	//   dns ok=false: 1. ghost.example:5269 STARTTLS priority 0 weight 0 DNSSEC no addresses: none (dnsdisco: lookup ghost.example A: no such host); a server bounces stanzas to it with remote-server-not-found
}

// TestCheckProxy: a partner's ProxyFQDN replaces the SRV lookup, and the
// proxy's name is an acceptable certificate identity.
func TestCheckProxy(t *testing.T) {
	w := newCheckWorld(t)
	w.server("fabrikam.example", "fabrikam.example", policy.Partner{Domain: "contoso.example"})
	// The proxy: the SRV target of fabrikam.example, named explicitly.
	targets, err := w.dns.Resolver().LookupServer(context.Background(), "fabrikam.example")
	if err != nil {
		t.Fatal(err)
	}
	proxy := net.JoinHostPort("proxy.fabrikam.example", strconv.Itoa(int(targets[0].Port)))
	w.dns.AddHost("proxy.fabrikam.example", netip.MustParseAddr("127.0.0.1"))
	a := w.server("contoso.example", "contoso.example", policy.Partner{Domain: "fabrikam.example", ProxyFQDN: proxy})

	rep, err := a.Check(context.Background(), "fabrikam.example")
	if err != nil {
		t.Fatal(err)
	}
	dumpStages(t, rep.Stages)
	if !rep.OK() {
		t.Fatal("not OK")
	}
	st := rep.Stage("dns", "")
	if st.Target != proxy || strings.Contains(st.Detail, "priority") || !strings.Contains(st.Detail, "proxy.fabrikam.example") {
		t.Errorf("dns stage %+v: want the proxy, no SRV", st)
	}
	if !strings.Contains(rep.Stage("policy", "").Detail, "proxy "+proxy) {
		t.Errorf("policy detail %q", rep.Stage("policy", "").Detail)
	}
	if n := w.dns.QueriesFor("_xmpp-server._tcp.fabrikam.example.", 33); n != 1 {
		t.Errorf("%d SRV queries for fabrikam.example, want only the test's own", n)
	}
}

// TestCheckNoUsableMethod: our certificate does not name our domain, so the
// peer offers no SASL EXTERNAL, and the partner's settings accept nothing
// else: the features stage says so, and authentication fails.
func TestCheckNoUsableMethod(t *testing.T) {
	w := newCheckWorld(t)
	a := w.server("contoso.example", "not-contoso.example", policy.Partner{Domain: "fabrikam.example"})
	w.server("fabrikam.example", "fabrikam.example", policy.Partner{Domain: "contoso.example"})
	rep, err := a.Check(context.Background(), "fabrikam.example")
	if err != nil {
		t.Fatal(err)
	}
	dumpStages(t, rep.Stages)
	f := rep.Stage("features", "")
	if f == nil || f.OK || !errors.Is(f.Err, s2s.ErrNoMethod) || strings.Contains(f.Detail, "EXTERNAL") || !strings.Contains(f.Err.Error(), "SASL over TLS") {
		t.Errorf("features stage %+v", f)
	}
	if c := rep.Stage("certificate", ""); c == nil || !c.OK {
		t.Errorf("the peer's certificate is fine: %+v", c)
	}
	if au := rep.Stage("auth", ""); au == nil || au.OK {
		t.Errorf("auth %+v", au)
	}
}
