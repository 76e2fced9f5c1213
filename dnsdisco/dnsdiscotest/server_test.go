package dnsdiscotest_test

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/xmppfed/xmppfed/dnsdisco/dnsdiscotest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ask(t *testing.T, s *dnsdiscotest.Server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.SetEdns0(1232, true)
	m, _, err := new(dns.Client).Exchange(q, s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestServerAnswers(t *testing.T) {
	s := dnsdiscotest.NewServer()
	defer s.Close()
	s.AddHost("Host.Example.org", netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"))
	s.AddCNAME("alias.example.org", "host.example.org")
	s.AddSRV("_xmpp-server._tcp", "example.org", "host.example.org", 5269, 1, 2)
	s.SetSecure("example.org", true)

	m := ask(t, s, "ALIAS.example.org", dns.TypeA)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 2 || !m.AuthenticatedData {
		t.Fatalf("CNAME answer: %v", m)
	}
	if a, ok := m.Answer[1].(*dns.A); !ok || a.A.String() != "192.0.2.1" {
		t.Fatalf("CNAME not followed: %v", m.Answer)
	}
	// NODATA: the name exists with other types; SOA in authority.
	m = ask(t, s, "host.example.org", dns.TypeTXT)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 || len(m.Ns) != 1 {
		t.Fatalf("NODATA: %v", m)
	}
	// Empty non-terminal is NODATA too.
	if m = ask(t, s, "_tcp.example.org", dns.TypeA); m.Rcode != dns.RcodeSuccess {
		t.Fatalf("ENT: %v", m)
	}
	// NXDOMAIN with SOA (MINIMUM 60).
	m = ask(t, s, "nothing.example.net", dns.TypeA)
	soa, ok := m.Ns[0].(*dns.SOA)
	if m.Rcode != dns.RcodeNameError || !ok || soa.Minttl != dnsdiscotest.SOAMinimum || m.AuthenticatedData {
		t.Fatalf("NXDOMAIN: %v", m)
	}
	s.SetRcode("host.example.org", dns.RcodeRefused)
	if m = ask(t, s, "host.example.org", dns.TypeA); m.Rcode != dns.RcodeRefused {
		t.Fatalf("SetRcode: %v", m)
	}
	if s.Queries() != 5 || s.QueriesFor("alias.example.org", dns.TypeA) != 1 || s.TCPQueries() != 0 {
		t.Fatalf("counters: %d %d %d", s.Queries(), s.QueriesFor("alias.example.org", dns.TypeA), s.TCPQueries())
	}
	r := s.Resolver()
	if len(r.Servers) != 1 || r.Servers[0] != s.Addr || r.HostsFile != s.HostsFile() {
		t.Fatalf("Resolver: %+v", r)
	}
}
