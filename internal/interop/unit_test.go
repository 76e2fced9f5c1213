//go:build interop

package interop

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// fakeDNSWriter captures the reply of a dns.Handler.
type fakeDNSWriter struct {
	dns.ResponseWriter // nil: only WriteMsg is used
	msg                *dns.Msg
}

func (w *fakeDNSWriter) WriteMsg(m *dns.Msg) error { w.msg = m; return nil }

func newZoneServer(t testing.TB) *DNSServer {
	t.Helper()
	recs, err := zone(Hosts())
	if err != nil {
		t.Fatal(err)
	}
	return &DNSServer{records: recs}
}

func ask(d *DNSServer, name string, qtype uint16) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	w := new(fakeDNSWriter)
	d.serveDNS(w, q)
	return w.msg
}

// TestZoneAnswers proves the zone the peers resolve through: each domain's
// _xmpp-server._tcp SRV points at the domain itself on 5269 (RFC 2782,
// RFC 6120 §3.2.1), its A record at its own loopback address, all with TTL
// 0; names that exist without the asked type get NODATA, unknown .test names
// NXDOMAIN, and names outside the zone REFUSED.
func TestZoneAnswers(t *testing.T) {
	d := newZoneServer(t)
	for _, h := range Hosts() {
		fqdn := h.Domain + "."
		m := ask(d, "_xmpp-server._tcp."+fqdn, dns.TypeSRV)
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
			t.Fatalf("SRV %s: rcode %d, %d answers", h.Domain, m.Rcode, len(m.Answer))
		}
		srv := m.Answer[0].(*dns.SRV)
		if srv.Target != fqdn || srv.Port != 5269 || srv.Hdr.Ttl != 0 {
			t.Errorf("SRV %s = %v, want target %s port 5269 TTL 0", h.Domain, srv, fqdn)
		}
		// Case-insensitive, like every DNS name comparison.
		m = ask(d, strings.ToUpper(fqdn), dns.TypeA)
		if len(m.Answer) != 1 || m.Answer[0].(*dns.A).A.String() != h.IP || m.Answer[0].Header().Ttl != 0 {
			t.Errorf("A %s = %v, want %s TTL 0", h.Domain, m.Answer, h.IP)
		}
		for _, nodata := range []struct {
			name  string
			qtype uint16
		}{{fqdn, dns.TypeAAAA}, {"_xmpps-server._tcp." + fqdn, dns.TypeSRV}} {
			m = ask(d, nodata.name, nodata.qtype)
			if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
				t.Errorf("%s %s: rcode %d, %d answers; want NODATA", nodata.name, dns.TypeToString[nodata.qtype], m.Rcode, len(m.Answer))
			}
		}
	}
	if m := ask(d, "nosuch.test.", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("nosuch.test: rcode %d, want NXDOMAIN", m.Rcode)
	}
	if m := ask(d, "example.org.", dns.TypeA); m.Rcode != dns.RcodeRefused {
		t.Errorf("example.org: rcode %d, want REFUSED", m.Rcode)
	}
	q := new(dns.Msg)
	q.SetQuestion("prosody.test.", dns.TypeA)
	q.Question = append(q.Question, q.Question[0])
	w := new(fakeDNSWriter)
	d.serveDNS(w, q)
	if w.msg.Rcode != dns.RcodeFormatError {
		t.Errorf("two questions: rcode %d, want FORMERR", w.msg.Rcode)
	}
}

// TestZoneDirectTLS proves a host with DirectTLSPort gets an
// _xmpps-server._tcp SRV record on that port (XEP-0368 §3).
func TestZoneDirectTLS(t *testing.T) {
	recs, err := zone([]Host{{Domain: "prosody.test", IP: "127.0.0.2", DirectTLSPort: 5270}})
	if err != nil {
		t.Fatal(err)
	}
	m := ask(&DNSServer{records: recs}, "_xmpps-server._tcp.prosody.test.", dns.TypeSRV)
	if len(m.Answer) != 1 || m.Answer[0].(*dns.SRV).Port != 5270 || m.Answer[0].(*dns.SRV).Target != "prosody.test." {
		t.Fatalf("_xmpps-server SRV = %v, want prosody.test.:5270", m.Answer)
	}
	m = ask(&DNSServer{records: recs}, "_xmpp-server._tcp.prosody.test.", dns.TypeSRV)
	if len(m.Answer) != 1 || m.Answer[0].(*dns.SRV).Priority <= 0 {
		t.Fatalf("_xmpp-server SRV = %v, want a worse priority than direct TLS", m.Answer)
	}
}

// TestZoneBadHost proves a bad address is reported with the domain named.
func TestZoneBadHost(t *testing.T) {
	_, err := zone([]Host{{Domain: "bad.test", IP: "not-an-ip"}})
	if err == nil || !strings.Contains(err.Error(), `"bad.test"`) {
		t.Fatalf("zone with a bad IP: %v, want an error naming bad.test", err)
	}
}

// unLua decodes a Lua string literal as luaString writes it.
func unLua(t testing.TB, lit string) string {
	t.Helper()
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		t.Fatalf("not a quoted literal: %q", lit)
	}
	body := lit[1 : len(lit)-1]
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '"':
			t.Fatalf("unescaped quote at %d in %q", i, lit)
		case c < 0x20 || c == 0x7f:
			t.Fatalf("raw control byte %#x in %q", c, lit)
		case c != '\\':
			b.WriteByte(c)
		case i+1 < len(body) && (body[i+1] == '\\' || body[i+1] == '"'):
			b.WriteByte(body[i+1])
			i++
		case i+3 < len(body):
			n, err := strconv.Atoi(body[i+1 : i+4])
			if err != nil || n > 255 {
				t.Fatalf("bad escape at %d in %q", i, lit)
			}
			b.WriteByte(byte(n))
			i += 3
		default:
			t.Fatalf("dangling backslash in %q", lit)
		}
	}
	return b.String()
}

// TestLuaString proves configuration values cannot break out of their Lua
// string literal.
func TestLuaString(t *testing.T) {
	for in, want := range map[string]string{
		"/tmp/x/prosody.log": `"/tmp/x/prosody.log"`,
		`a"b\c`:              `"a\"b\\c"`,
		"line\nbreak\x00":    `"line\010break\000"`,
	} {
		if got := luaString(in); got != want {
			t.Errorf("luaString(%q) = %s, want %s", in, got, want)
		}
		if back := unLua(t, luaString(in)); back != in {
			t.Errorf("round trip of %q gave %q", in, back)
		}
	}
}

// TestShQuote proves paths stay one shell word in ejabberdctl.cfg.
func TestShQuote(t *testing.T) {
	if got, want := shQuote("/tmp/a b/it's"), `'/tmp/a b/it'\''s'`; got != want {
		t.Errorf("shQuote = %s, want %s", got, want)
	}
}

// TestSandbox proves the process-tree guarantees of sandbox: a new PID
// namespace whose init gets SIGKILL when unshare dies (--kill-child), the
// private mount namespace only when a resolv.conf is given, and a shell
// that runs setpriv as a child (not exec, which would clear the death
// signal on the credential change) and drops to the given user.
func TestSandbox(t *testing.T) {
	acct := account{name: "ejabberd"}
	plain := sandbox(acct, "", "prosody", "-F")
	for _, flag := range []string{"--pid", "--fork", "--kill-child"} {
		if !slices.Contains(plain, flag) {
			t.Errorf("sandbox lacks %s: %q", flag, plain)
		}
	}
	if slices.Contains(plain, "--mount") {
		t.Errorf("sandbox without resolv.conf makes a mount namespace: %q", plain)
	}
	if !slices.Equal(plain[len(plain)-2:], []string{"prosody", "-F"}) || !slices.Contains(plain, "U=ejabberd") {
		t.Errorf("sandbox does not run the command as the user: %q", plain)
	}
	script := plain[slices.Index(plain, "-c")+1]
	if strings.Contains(script, "exec ") || !strings.Contains(script, "setpriv") {
		t.Errorf("sandbox script %q must run setpriv as a child", script)
	}
	withMount := sandbox(acct, "/tmp/r/resolv.conf", "ejabberdctl")
	if !slices.Contains(withMount, "--mount") || !slices.Contains(withMount, "R=/tmp/r/resolv.conf") ||
		!strings.Contains(withMount[slices.Index(withMount, "-c")+1], "mount --bind") {
		t.Errorf("sandbox with resolv.conf lacks the bind mount: %q", withMount)
	}
}

// TestEvidence proves the log patterns that corroborate the auth method:
// each mode's lines match its own patterns and trip the other mode's
// rejects, for both servers. The sample lines are copied from real runs.
func TestEvidence(t *testing.T) {
	prosodyExternal := "Nov 25 21:43:56 prosody.test:saslauth\tdebug\tSASL EXTERNAL with xmppfed.test succeeded\n" +
		"Nov 25 21:43:56 prosody.test:saslauth\tinfo\tAccepting SASL EXTERNAL identity from xmppfed.test\n"
	prosodyDialback := "Nov 25 21:43:56 s2sout55\tdebug\tReceived[s2sout_unauthed]: <result from='xmppfed.test' xmlns='jabber:server:dialback' xml:lang='en' type='valid' to='prosody.test'>\n" +
		"Nov 25 21:43:56 s2sin55\tdebug\tSending[s2sin]: <db:result from='prosody.test' id='1c' to='xmppfed.test' type='valid'>\n"
	ejExternal := "[info] (tls|<0.492.0>) Accepted outbound s2s EXTERNAL authentication ejabberd.test -> xmppfed.test (127.0.0.4)\n" +
		"[info] (tls|<0.493.0>) Accepted inbound s2s EXTERNAL authentication xmppfed.test -> ejabberd.test (127.0.0.1)\n"
	ejDialback := strings.ReplaceAll(ejExternal, "EXTERNAL", "dialback")
	for _, tc := range []struct {
		name     string
		evidence func(Mode, string) ([]string, []string)
		logs     map[Mode]string
	}{
		{"prosody", prosodyEvidence, map[Mode]string{External: prosodyExternal, Dialback: prosodyDialback}},
		{"ejabberd", ejabberdEvidence, map[Mode]string{External: ejExternal, Dialback: ejDialback}},
	} {
		for mode, log := range tc.logs {
			want, reject := tc.evidence(mode, OurDomain)
			if missing, wrong := matchEvidence(log, want, reject); len(missing) > 0 || wrong != "" {
				t.Errorf("%s %s: own log: missing %q, wrong %q", tc.name, mode, missing, wrong)
			}
			other := External
			if mode == External {
				other = Dialback
			}
			if _, wrong := matchEvidence(tc.logs[other], want, reject); wrong == "" {
				t.Errorf("%s %s: the %s log was not rejected", tc.name, mode, other)
			}
			// Half the evidence (one direction only) is not enough.
			half := strings.SplitAfter(log, "\n")[0]
			if missing, _ := matchEvidence(half, want, reject); len(missing) == 0 {
				t.Errorf("%s %s: one direction's line satisfied both", tc.name, mode)
			}
			// Another domain's lines are not ours.
			if missing, _ := matchEvidence(strings.ReplaceAll(log, OurDomain, "other.test"), want, reject); len(missing) == 0 {
				t.Errorf("%s %s: lines about other.test accepted", tc.name, mode)
			}
		}
	}
}

// TestSettingsFor proves the per-mode settings the brief asks for: SASL
// EXTERNAL required, or SASL not supported so dialback is used; TLS always
// required.
func TestSettingsFor(t *testing.T) {
	ext, db := SettingsFor(External), SettingsFor(Dialback)
	if ext.SASL.String() != "required" || ext.TLS.String() != "required" || ext.DisableDialback {
		t.Errorf("external settings %+v", ext)
	}
	if db.SASL.String() != "not-supported" || db.TLS.String() != "required" || db.DisableDialback {
		t.Errorf("dialback settings %+v", db)
	}
}
