//go:build interop

package interop

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzServeDNS feeds arbitrary DNS messages to the zone handler: it must
// never panic, must answer every parsable query with a reply carrying the
// query's id, and may only answer with zone records for the asked name and
// type.
func FuzzServeDNS(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"_xmpp-server._tcp.prosody.test.", dns.TypeSRV},
		{"EJABBERD.TEST.", dns.TypeA},
		{"xmppfed.test.", dns.TypeAAAA},
		{"test.", dns.TypeSOA},
		{"example.org.", dns.TypeA},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	d := newZoneServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		q := new(dns.Msg)
		if q.Unpack(data) != nil {
			return
		}
		w := new(fakeDNSWriter)
		d.serveDNS(w, q)
		if w.msg == nil {
			t.Fatal("no reply")
		}
		if w.msg.Id != q.Id || !w.msg.Response {
			t.Fatalf("reply id %d response %v for query id %d", w.msg.Id, w.msg.Response, q.Id)
		}
		if len(w.msg.Answer) == 0 {
			return
		}
		if len(q.Question) != 1 {
			t.Fatalf("answers to a query with %d questions", len(q.Question))
		}
		for _, rr := range w.msg.Answer {
			h := rr.Header()
			if !strings.EqualFold(h.Name, q.Question[0].Name) || h.Rrtype != q.Question[0].Qtype || h.Ttl != 0 {
				t.Fatalf("answer %v to question %v", rr, q.Question[0])
			}
		}
	})
}

// FuzzLuaString proves no value can escape its Lua string literal in the
// generated Prosody configuration: the literal decodes back to the input
// and holds no raw quote or control byte.
func FuzzLuaString(f *testing.F) {
	for _, s := range []string{"", "/tmp/xmppfed-interop-prosody-1/prosody.log", `"; os.exit(1) --`, "a\\\nb\x00\x7f", "é\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if back := unLua(t, luaString(s)); back != s {
			t.Fatalf("luaString(%q) decodes to %q", s, back)
		}
	})
}
