package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDemo runs the README's first command in-process: it must reach the
// demo domain over both candidates, show the broken third one, say why the
// certificate verifies and authenticate.
func TestDemo(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), nil, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q\n%s", code, errOut.String(), out.String())
	}
	text := out.String()
	for _, want := range []string{
		"demo mode",
		"Policy: partner demo.example, type federated",
		"1. s2s.demo.example:", // the direct TLS target (priority 5) comes first
		"direct TLS  priority 5 weight 0  DNSSEC yes",
		"STARTTLS  priority 10 weight 0  DNSSEC yes",
		"3. old.demo.example:5269  STARTTLS  priority 20", // the broken candidate is listed last
		"addresses: none",
		"ALPN xmpp-server", // XEP-0368 direct TLS
		`SRV-ID "_xmpp-server.demo.example"`,
		`PKIX: valid, matched SRV-ID "_xmpp-server.demo.example"`,
		`DANE: matched DANE-EE "3 1 1"`,
		"verifies for demo.example",
		"offered: SASL EXTERNAL, dialback, bidi (XEP-0288)",
		"authenticated with sasl-external over TLS 1.3",
		"ping answered",
		"Result: demo.example is reachable",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "FAIL") {
		t.Errorf("a stage failed in the demo:\n%s", text)
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr not empty on success: %q", errOut.String())
	}
}

func TestDemoJSON(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"-json"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if !rep.Reachable || rep.Domain != demoDomain || !strings.Contains(rep.Auth, "sasl-external") {
		t.Fatalf("reachable=%v domain=%q auth=%q", rep.Reachable, rep.Domain, rep.Auth)
	}
	if len(rep.Targets) != 3 {
		t.Fatalf("got %d targets, want 3", len(rep.Targets))
	}
	if !rep.Targets[0].DirectTLS || rep.Targets[1].DirectTLS || rep.Targets[2].AddrError == "" {
		t.Errorf("targets out of order or broken one not flagged: %+v", rep.Targets)
	}
	var names []string
	for _, st := range rep.Stages {
		names = append(names, st.Name)
		if !st.OK || st.Error != "" {
			t.Errorf("stage %+v failed", st)
		}
	}
	if got, want := strings.Join(names, ","), "policy,dns,tcp,tls,certificate,features,tcp,tls,certificate,features,auth"; got != want {
		t.Errorf("stages %s, want %s", got, want)
	}
}

// zone is a local test world driven through the command-line flags, the way
// an operator checks a domain offline.
type zone struct {
	ca     *certs.TestCA
	caFile string
	dns    *dnsdiscotest.Server

	wg    sync.WaitGroup
	mu    sync.Mutex
	lns   []net.Listener
	conns map[net.Conn]struct{}
}

func newZone(t *testing.T) *zone {
	t.Helper()
	ca, err := certs.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.RootPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	z := &zone{ca: ca, caFile: caFile, dns: dnsdiscotest.NewServer(), conns: make(map[net.Conn]struct{})}
	t.Cleanup(z.close)
	return z
}

// serve answers each connection to a new loopback listener with handle and
// publishes it as domain's record of service ("_xmpp-server._tcp" or
// "_xmpps-server._tcp").
func (z *zone) serve(t *testing.T, service, domain string, handle func(net.Conn)) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	z.mu.Lock()
	z.lns = append(z.lns, l)
	z.mu.Unlock()
	z.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			z.mu.Lock()
			z.conns[c] = struct{}{}
			z.mu.Unlock()
			z.wg.Go(func() {
				defer func() {
					z.mu.Lock()
					delete(z.conns, c)
					z.mu.Unlock()
					c.Close()
				}()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			})
		}
	})
	host := "xmpp." + domain
	z.dns.AddSRV(service, domain, host, uint16(l.Addr().(*net.TCPAddr).Port), 0, 0)
	z.dns.AddHost(host, netip.MustParseAddr("127.0.0.1"))
}

func (z *zone) close() {
	z.mu.Lock()
	for _, l := range z.lns {
		l.Close()
	}
	for c := range z.conns {
		c.Close()
	}
	z.mu.Unlock()
	z.wg.Wait()
	z.dns.Close()
}

// tlsOnly completes a direct TLS handshake presenting cert and hangs up: as
// far as a certificate check needs.
func tlsOnly(cert tls.Certificate) func(net.Conn) {
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return func(c net.Conn) {
		tc := tls.Server(c, cfg)
		_ = tc.HandshakeContext(context.Background())
		_ = tc.Close()
	}
}

func (z *zone) run(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	args = append([]string{"-dns", z.dns.Addr, "-ca", z.caFile, "-timeout", "2s"}, args...)
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestOfflineZoneReachable checks a real federation Server: the certificate
// verifies, so the domain is reachable, while the authentication attempt
// fails (s2scheck has no certificate of its own): reported, not fatal.
func TestOfflineZoneReachable(t *testing.T) {
	z := newZone(t)
	d := &demo{dns: z.dns}
	t.Cleanup(func() {
		d.Close()
	})
	a, err := d.start(z.ca, "a.example", "s2scheck.example", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	z.dns.AddSRV("_xmpp-server._tcp", "a.example", "xmpp.a.example", a.port, 0, 0)
	z.dns.AddHost("xmpp.a.example", netip.MustParseAddr("127.0.0.1"))

	code, out, errOut := z.run("-from", "s2scheck.example", "a.example")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
	}
	for _, want := range []string{"verifies for a.example", "DNSSEC no", "usable: TLS dialback", "FAIL  auth", "Result: a.example is reachable"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestOfflineZoneFailures checks that each way a domain can be unreachable
// exits 1 with a one-line reason that names the cause.
func TestOfflineZoneFailures(t *testing.T) {
	z := newZone(t)
	wrong, err := z.ca.IssueDomain("other.example")
	if err != nil {
		t.Fatal(err)
	}
	z.serve(t, "_xmpps-server._tcp", "wrongname.example", tlsOnly(wrong))

	untrusted, err := z.ca.Issue(certs.Leaf{DNSNames: []string{"selfsigned.example"}, SelfSigned: true})
	if err != nil {
		t.Fatal(err)
	}
	z.serve(t, "_xmpps-server._tcp", "selfsigned.example", tlsOnly(untrusted))

	z.dns.AddSRV("_xmpp-server._tcp", "noservice.example", ".", 0, 0, 0)

	// A closed port: listen, note the port, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	z.dns.AddSRV("_xmpp-server._tcp", "closed.example", "xmpp.closed.example", closedPort, 0, 0)
	z.dns.AddHost("xmpp.closed.example", netip.MustParseAddr("127.0.0.1"))

	for _, tc := range []struct {
		domain string
		want   []string
	}{
		{"wrongname.example", []string{"failed at certificate", "not valid for \"wrongname.example\"", "other.example"}},
		{"selfsigned.example", []string{"failed at certificate"}},
		{"noservice.example", []string{"explicitly offers no service"}}, // the "." target
		{"nxdomain.example", []string{"nxdomain.example"}},
		{"closed.example", []string{"failed at tcp"}},
		{"bad..name", []string{"refused by the policy", "bad..name"}},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			code, out, errOut := z.run(tc.domain)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr %q\n%s", code, errOut, out)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "s2scheck: "+tc.domain+" is not reachable: ") {
				t.Errorf("stderr is not one reason line: %q", errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("reason %q lacks %q", errOut, w)
				}
			}
		})
	}

	code, out, _ := z.run("-json", "noservice.example")
	var rep report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 {
		t.Fatalf("exit %d, json err %v", code, err)
	}
	if rep.DNSErrorKind != "remote-server-not-found" {
		t.Errorf("\".\" target maps to %q, want remote-server-not-found", rep.DNSErrorKind)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-nosuchflag"},
		{"a.example", "b.example"},
		{"-timeout", "0s", "a.example"},
		{"-ca", filepath.Join(t.TempDir(), "missing.pem"), "a.example"},
		{"-from", "bad..name", "a.example"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if errOut.Len() == 0 {
			t.Errorf("%q: no message on stderr", args)
		}
	}
}

// TestStartTLSRefusals drives the STARTTLS probe against peers that do not
// get as far as TLS, and checks the reason names what the peer did.
func TestStartTLSRefusals(t *testing.T) {
	z := newZone(t)
	headers := make(chan string, 1)
	for _, tc := range []struct {
		domain, reply, want string
	}{
		{"streamerror.example", "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>",
			"stream error <host-unknown/>"},
		{"notls.example", "<stream:features/>", "does not offer STARTTLS"},
		{"failure.example", "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features><failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
			"refused STARTTLS"},
	} {
		reply := tc.reply
		z.serve(t, "_xmpp-server._tcp", tc.domain, func(c net.Conn) {
			buf := make([]byte, 4096)
			n, _ := c.Read(buf)
			select {
			case headers <- string(buf[:n]):
			default:
			}
			_, _ = c.Write([]byte("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' id='x' version='1.0'>" + reply))
			_, _ = c.Read(buf) // the <starttls/>, or EOF
		})

		code, out, errOut := z.run("-from", "us.example", tc.domain)
		if code != 1 || !strings.Contains(errOut, "failed at tls") || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q, want reason with %q\n%s", tc.domain, code, errOut, tc.want, out)
		}
		if h := <-headers; !strings.Contains(h, "to='"+tc.domain+"'") || !strings.Contains(h, "from='us.example'") || !strings.Contains(h, "version='1.0'") {
			t.Errorf("stream header %q lacks to, from or version", h)
		}
	}
}
