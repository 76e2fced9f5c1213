package dnsdisco

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestToASCII(t *testing.T) {
	good := map[string]string{
		"Example.ORG":           "example.org",
		"example.org.":          "example.org",
		"bücher.example":        "xn--bcher-kva.example",
		"xn--bcher-kva.example": "xn--bcher-kva.example",
		"localhost":             "localhost",
		"a-b.c1":                "a-b.c1",
	}
	for in, want := range good {
		got, err := toASCII(in)
		if err != nil || got != want {
			t.Errorf("toASCII(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	max := strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", 61) // 253 bytes
	if _, err := toASCII(max); err != nil {
		t.Errorf("253-byte name rejected: %v", err)
	}
	if _, err := toASCII(max + "b"); err == nil {
		t.Error("254-byte name accepted")
	}
}

func TestOrderSRVPriorityAndPermutation(t *testing.T) {
	in := []srvRecord{
		{Target: "p3", Priority: 3, Weight: 1},
		{Target: "p1a", Priority: 1, Weight: 0},
		{Target: "p2", Priority: 2, Weight: 0},
		{Target: "p1b", Priority: 1, Weight: 7},
	}
	out := orderSRV(in, func(n int) int { return 0 })
	var got []string
	for _, r := range out {
		got = append(got, r.Target)
	}
	if strings.Join(got, ",") != "p1a,p1b,p2,p3" {
		t.Fatalf("order %v", got)
	}
	if in[0].Target != "p3" {
		t.Fatal("orderSRV modified its input")
	}
}

// All weights zero: the pick is uniform via randN, not always the first.
func TestOrderSRVAllZeroUsesRand(t *testing.T) {
	in := []srvRecord{{Target: "a"}, {Target: "b"}, {Target: "c"}}
	out := orderSRV(in, func(n int) int { return n - 1 })
	if out[0].Target != "c" || out[1].Target != "b" || out[2].Target != "a" {
		t.Fatalf("order %v", out)
	}
}

// A misbehaving Rand cannot make orderSRV panic or pick out of range.
func TestRandIntNClamps(t *testing.T) {
	for _, f := range []func(int) int{func(int) int { return -7 }, func(n int) int { return n * 3 }} {
		r := &Resolver{Rand: f}
		for n := 1; n < 10; n++ {
			if v := r.randIntN(n); v < 0 || v >= n {
				t.Fatalf("randIntN(%d) = %d", n, v)
			}
		}
	}
}

func FuzzOrderSRV(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 1, 2, 3, 4}, uint64(1))
	f.Add([]byte{5, 5, 5, 5, 5, 5, 0, 0, 0, 0, 0, 0}, uint64(99))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		var in []srvRecord
		for i := 0; i+2 < len(data) && len(in) < 32; i += 3 {
			in = append(in, srvRecord{Target: string(rune('a' + len(in))), Priority: uint16(data[i] % 4), Weight: uint16(data[i+1])<<8 | uint16(data[i+2])})
		}
		x := seed
		randN := func(n int) int { // xorshift, deterministic per input
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			return int(x % uint64(n))
		}
		out := orderSRV(in, randN)
		if len(out) != len(in) {
			t.Fatalf("len %d -> %d", len(in), len(out))
		}
		a, b := slices.Clone(in), slices.Clone(out)
		cmp := func(p, q srvRecord) int { return strings.Compare(p.Target, q.Target) }
		slices.SortFunc(a, cmp)
		slices.SortFunc(b, cmp)
		if !slices.Equal(a, b) {
			t.Fatalf("not a permutation: %v -> %v", in, out)
		}
		for i := 1; i < len(out); i++ {
			if out[i].Priority < out[i-1].Priority {
				t.Fatalf("priority decreases at %d: %v", i, out)
			}
		}
	})
}

func TestParseHosts(t *testing.T) {
	h := parseHosts([]byte("127.0.0.1 localhost\n# x\n::1 localhost ip6-localhost # c\nbogus name\nfe80::1%eth0 zoned\n10.0.0.1\tA.Example. b\n::ffff:10.0.0.2 a.example\n"))
	want := hostsTable{
		"localhost":     {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
		"ip6-localhost": {netip.MustParseAddr("::1")},
		"a.example":     {netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")},
		"b":             {netip.MustParseAddr("10.0.0.1")},
	}
	if len(h) != len(want) {
		t.Fatalf("got %v", h)
	}
	for k, v := range want {
		if !slices.Equal(h[k], v) {
			t.Errorf("%s: %v, want %v", k, h[k], v)
		}
	}
}

// formatHosts writes a table back in hosts(5) format.
func formatHosts(h hostsTable) string {
	var b strings.Builder
	for name, addrs := range h {
		for _, a := range addrs {
			b.WriteString(a.String() + " " + name + "\n")
		}
	}
	return b.String()
}

func FuzzHostsFile(f *testing.F) {
	f.Add([]byte("127.0.0.1 localhost\n::1 localhost\n"))
	f.Add([]byte("# only a comment\n\n  \t\n"))
	f.Add([]byte("10.0.0.1 a b c # trailing\n10.0.0.1 A.\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := parseHosts(data)
		for name, addrs := range h {
			if name == "" || name != strings.ToLower(name) || strings.HasSuffix(name, ".") || strings.ContainsAny(name, " \t\n#") {
				t.Fatalf("bad name %q", name)
			}
			if len(addrs) == 0 {
				t.Fatalf("name %q without addresses", name)
			}
			for _, a := range addrs {
				if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
					t.Fatalf("bad address %v for %q", a, name)
				}
			}
		}
		// Round trip: formatting and re-parsing gives the same table
		// (the address order per name is preserved).
		h2 := parseHosts([]byte(formatHosts(h)))
		if len(h2) != len(h) {
			t.Fatalf("round trip: %d names -> %d", len(h), len(h2))
		}
		for name, addrs := range h {
			a, b := slices.Clone(addrs), slices.Clone(h2[name])
			slices.SortFunc(a, netip.Addr.Compare)
			slices.SortFunc(b, netip.Addr.Compare)
			if !slices.Equal(a, b) {
				t.Fatalf("round trip %q: %v -> %v", name, addrs, h2[name])
			}
		}
	})
}

func TestFollowChain(t *testing.T) {
	hdr := func(n string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: n, Rrtype: t, Class: dns.ClassINET, Ttl: 60}
	}
	ans := []dns.RR{
		&dns.CNAME{Hdr: hdr("A.example.", dns.TypeCNAME), Target: "b.example."},
		&dns.A{Hdr: hdr("b.example.", dns.TypeA), A: []byte{192, 0, 2, 1}},
		&dns.A{Hdr: hdr("a.example.", dns.TypeAAAA)}, // wrong type for header; ignored by type switch
		&dns.A{Hdr: hdr("other.example.", dns.TypeA), A: []byte{6, 6, 6, 6}},
	}
	rrs, end, err := followChain("a.example", dns.TypeA, ans)
	if err != nil || end != "b.example." || len(rrs) != 1 {
		t.Fatalf("followChain = %v %q %v", rrs, end, err)
	}
	loop := []dns.RR{
		&dns.CNAME{Hdr: hdr("a.example.", dns.TypeCNAME), Target: "b.example."},
		&dns.CNAME{Hdr: hdr("b.example.", dns.TypeCNAME), Target: "a.example."},
	}
	if _, _, err := followChain("a.example", dns.TypeA, loop); err == nil {
		t.Fatal("CNAME loop not detected")
	}
}

// FuzzResponse feeds arbitrary bytes through miekg's unpacker and our
// answer extraction: no panic, and every address returned is in the
// answer section.
func FuzzResponse(f *testing.F) {
	q := new(dns.Msg)
	q.SetQuestion("host.example.", dns.TypeA)
	m := new(dns.Msg)
	m.SetReply(q)
	m.Answer = []dns.RR{
		&dns.CNAME{Hdr: dns.RR_Header{Name: "host.example.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: "real.example."},
		&dns.A{Hdr: dns.RR_Header{Name: "real.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, 1}},
	}
	if b, err := m.Pack(); err == nil {
		f.Add(b)
	}
	m.Rcode = dns.RcodeNameError
	m.Answer = nil
	m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: "example.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60}, Ns: "ns.example.", Mbox: "h.example.", Minttl: 5}}
	if b, err := m.Pack(); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := new(dns.Msg)
		if err := m.Unpack(data); err != nil {
			return
		}
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
			qq := new(dns.Msg)
			qq.SetQuestion("host.example.", qt)
			if len(m.Question) == 1 {
				qq.Question[0].Name = m.Question[0].Name
			}
			resp, err := parseResponse(qq, m)
			if err != nil {
				continue
			}
			if resp.ttl < 0 || resp.ttl > maxTTL {
				t.Fatalf("ttl %v out of range", resp.ttl)
			}
			rrs, _, err := followChain(qq.Question[0].Name, qt, resp.answer)
			if err != nil {
				continue
			}
			in := extractAddrs(m.Answer)
			for _, a := range extractAddrs(rrs) {
				if !slices.Contains(in, a) {
					t.Fatalf("address %v not in the answer", a)
				}
			}
			for _, rr := range rrs {
				if rr.Header().Rrtype != qt {
					t.Fatalf("extracted %v for type %d", rr, qt)
				}
			}
		}
		// SRV extraction never panics either.
		_, _, _ = followChain("_xmpp-server._tcp.example.", dns.TypeSRV, m.Answer)
	})
}

// FuzzParseHostPort feeds arbitrary LookupHost arguments to its parser: it
// never panics; what it accepts is an IP literal or a valid A-label with a
// non-zero port, and formatting that back with net.JoinHostPort parses to
// the same target; what it refuses wraps ErrInvalidName.
func FuzzParseHostPort(f *testing.F) {
	for _, s := range []string{"proxy.example.net", "proxy.example.net:15269", "192.0.2.1", "[2001:db8::1]:5270",
		"2001:db8::1", "Bücher.Example.", "a:b:c", "host:0", "host:http", ":5269", "[::1]", "[fe80::1%eth0]:1"} {
		f.Add(s, uint16(0))
		f.Add(s, uint16(5270))
	}
	f.Fuzz(func(t *testing.T, in string, port uint16) {
		o, err := parseHostPort(in, port)
		if err != nil {
			var le *LookupError
			if !errors.As(err, &le) || !errors.Is(err, ErrInvalidName) {
				t.Fatalf("parseHostPort(%q) error %v (%T) is not a *LookupError wrapping ErrInvalidName", in, err, err)
			}
			return
		}
		if o.Port == 0 || o.DirectTLS {
			t.Fatalf("parseHostPort(%q, %d) = %+v", in, port, o)
		}
		if _, ok := parseIPLiteral(o.Host); !ok {
			if a, err := toASCII(o.Host); err != nil || a != o.Host {
				t.Fatalf("parseHostPort(%q) host %q is not an A-label (%v)", in, o.Host, err)
			}
		}
		again, err := parseHostPort(net.JoinHostPort(o.Host, strconv.Itoa(int(o.Port))), 1)
		if err != nil || again != o {
			t.Fatalf("round trip of %+v: %+v, %v", o, again, err)
		}
	})
}
