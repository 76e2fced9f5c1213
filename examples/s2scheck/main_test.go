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
	"testing"

	"go.uber.org/goleak"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDemo runs the README's first command in-process: it must reach the
// demo domain over both candidates, show the broken third one, and say why
// the certificate verifies.
func TestDemo(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), nil, &out, &errOut); code != 0 {
		t.Fatalf("exit %d, stderr %q\n%s", code, errOut.String(), out.String())
	}
	text := out.String()
	for _, want := range []string{
		"demo mode",
		"1. s2s.demo.example:", // the direct TLS target (priority 5) comes first
		"direct TLS  priority 5 weight 0  DNSSEC yes",
		"STARTTLS  priority 10 weight 0  DNSSEC yes",
		"3. old.demo.example:5269  STARTTLS  priority 20", // the broken candidate is listed last
		"addresses: none",
		"ALPN xmpp-server", // XEP-0368 direct TLS
		`SRV-ID "_xmpp-server.demo.example"`,
		`PKIX: valid, matched SRV-ID "_xmpp-server.demo.example"`,
		`DANE: matched DANE-EE "3 1 1"`,
		"verifies for demo.example: yes",
		"Result: demo.example is reachable",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
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
	if !rep.Reachable || rep.Domain != demoDomain {
		t.Fatalf("reachable=%v domain=%q", rep.Reachable, rep.Domain)
	}
	if len(rep.Targets) != 3 {
		t.Fatalf("got %d targets, want 3", len(rep.Targets))
	}
	if !rep.Targets[0].DirectTLS || rep.Targets[1].DirectTLS || rep.Targets[2].AddrError == "" {
		t.Errorf("targets out of order or broken one not flagged: %+v", rep.Targets)
	}
	for _, tr := range rep.Targets[:2] {
		if len(tr.Attempts) != 1 || tr.Attempts[0].Certificate == nil || !tr.Attempts[0].Certificate.Verified {
			t.Errorf("%s:%d not verified: %+v", tr.Host, tr.Port, tr.Attempts)
		}
	}
}

// zone is a local test world driven through the command-line flags, the way
// an operator checks a domain offline.
type zone struct {
	*demo
	ca     *certs.TestCA
	caFile string
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
	z := &zone{demo: &demo{conns: make(map[net.Conn]struct{})}, ca: ca, caFile: caFile}
	z.dns = dnsdiscotest.NewServer()
	t.Cleanup(z.Close)
	return z
}

// listen starts a direct TLS listener presenting cert and publishes it as
// domain's _xmpps-server record.
func (z *zone) listen(t *testing.T, domain string, cert tls.Certificate) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	z.lns = append(z.lns, l)
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	z.serve(l, func(c net.Conn) { demoDirectTLS(c, cfg) })
	host := "xmpp." + domain
	z.dns.AddSRV("_xmpps-server._tcp", domain, host, uint16(l.Addr().(*net.TCPAddr).Port), 0, 0)
	z.dns.AddHost(host, netip.MustParseAddr("127.0.0.1"))
}

func (z *zone) run(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	args = append([]string{"-dns", z.dns.Addr, "-ca", z.caFile, "-timeout", "2s"}, args...)
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestOfflineZoneReachable(t *testing.T) {
	z := newZone(t)
	cert, err := z.ca.IssueDomain("a.example")
	if err != nil {
		t.Fatal(err)
	}
	z.listen(t, "a.example", cert)
	code, out, errOut := z.run("a.example")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
	}
	if !strings.Contains(out, "verifies for a.example: yes") || !strings.Contains(out, "DNSSEC no") {
		t.Errorf("unexpected report:\n%s", out)
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
	z.listen(t, "wrongname.example", wrong)

	untrusted, err := z.ca.Issue(certs.Leaf{DNSNames: []string{"selfsigned.example"}, SelfSigned: true})
	if err != nil {
		t.Fatal(err)
	}
	z.listen(t, "selfsigned.example", untrusted)

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
		{"wrongname.example", []string{"failed at verify", "not valid for \"wrongname.example\"", "other.example"}},
		{"selfsigned.example", []string{"failed at verify"}},
		{"noservice.example", []string{"explicitly offers no service"}}, // the "." target
		{"nxdomain.example", []string{"nxdomain.example"}},
		{"closed.example", []string{"failed at tcp"}},
		{"bad..name", []string{"bad..name"}},
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
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		z.lns = append(z.lns, l)
		reply := tc.reply
		z.serve(l, func(c net.Conn) {
			buf := make([]byte, 4096)
			n, _ := c.Read(buf)
			select {
			case headers <- string(buf[:n]):
			default:
			}
			_, _ = c.Write([]byte("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' id='x' version='1.0'>" + reply))
			_, _ = c.Read(buf) // the <starttls/>, or EOF
		})
		host := "xmpp." + tc.domain
		z.dns.AddSRV("_xmpp-server._tcp", tc.domain, host, uint16(l.Addr().(*net.TCPAddr).Port), 0, 0)
		z.dns.AddHost(host, netip.MustParseAddr("127.0.0.1"))

		code, out, errOut := z.run("-from", "us.example", tc.domain)
		if code != 1 || !strings.Contains(errOut, "failed at starttls") || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q, want reason with %q\n%s", tc.domain, code, errOut, tc.want, out)
		}
		if h := <-headers; !strings.Contains(h, "to='"+tc.domain+"'") || !strings.Contains(h, "from='us.example'") || !strings.Contains(h, "version='1.0'") {
			t.Errorf("stream header %q lacks to, from or version", h)
		}
	}
}
