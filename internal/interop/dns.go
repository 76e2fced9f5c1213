//go:build interop

package interop

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNSAddr is where the harness DNS server listens. glibc's resolver (used by
// ejabberd for SRV targets) only talks to port 53.
const DNSAddr = "127.0.0.5:53"

// Host is one XMPP domain of the test zone and the loopback address its
// server listens on.
type Host struct {
	Domain string // e.g. "prosody.test"
	IP     string // e.g. "127.0.0.2"
	// DirectTLSPort, if not zero, publishes an _xmpps-server._tcp SRV
	// record (XEP-0368 §3) for the domain on that port.
	DirectTLSPort uint16
}

// Hosts returns the domains of the test zone.
func Hosts() []Host {
	return []Host{
		{Domain: "prosody.test", IP: "127.0.0.2"},
		{Domain: "ejabberd.test", IP: "127.0.0.3"},
		{Domain: "xmppfed.test", IP: "127.0.0.4"},
	}
}

// DNSServer serves the "test." zone on DNSAddr over UDP and TCP.
type DNSServer struct {
	udp, tcp *dns.Server
	wg       sync.WaitGroup
	records  map[string][]dns.RR // by lower-case FQDN
}

// zone builds the records for hosts: for each domain an A record and a
// _xmpp-server._tcp SRV record pointing at the domain itself on port 5269
// (RFC 6120 §3.2.1, RFC 2782). TTL 0 so no resolver keeps stale answers
// between tests.
func zone(hosts []Host) (map[string][]dns.RR, error) {
	recs := make(map[string][]dns.RR)
	for _, h := range hosts {
		fqdn := dns.Fqdn(strings.ToLower(h.Domain))
		a, err := dns.NewRR(fmt.Sprintf("%s 0 IN A %s", fqdn, h.IP))
		if err != nil {
			return nil, fmt.Errorf("interop: A record for %q: %w", h.Domain, err)
		}
		// With direct TLS published, STARTTLS gets the worse priority so
		// that peers merging both SRV sets (XEP-0368 §3) try direct TLS
		// first, deterministically.
		prio := 0
		if h.DirectTLSPort != 0 {
			prio = 10
		}
		srv, err := dns.NewRR(fmt.Sprintf("_xmpp-server._tcp.%s 0 IN SRV %d 0 5269 %s", fqdn, prio, fqdn))
		if err != nil {
			return nil, fmt.Errorf("interop: SRV record for %q: %w", h.Domain, err)
		}
		recs[fqdn] = append(recs[fqdn], a)
		recs["_xmpp-server._tcp."+fqdn] = append(recs["_xmpp-server._tcp."+fqdn], srv)
		if h.DirectTLSPort != 0 {
			srvs, err := dns.NewRR(fmt.Sprintf("_xmpps-server._tcp.%s 0 IN SRV 0 0 %d %s", fqdn, h.DirectTLSPort, fqdn))
			if err != nil {
				return nil, fmt.Errorf("interop: direct TLS SRV record for %q: %w", h.Domain, err)
			}
			recs["_xmpps-server._tcp."+fqdn] = append(recs["_xmpps-server._tcp."+fqdn], srvs)
		}
		// Names that exist without records of the asked type get NODATA,
		// not NXDOMAIN (so _xmpps-server and AAAA lookups end quickly).
		for _, n := range []string{"_xmpps-server._tcp." + fqdn, "_xmpp-client._tcp." + fqdn, "_xmpps-client._tcp." + fqdn} {
			if _, ok := recs[n]; !ok {
				recs[n] = nil
			}
		}
	}
	return recs, nil
}

// StartDNS starts the zone server for hosts on DNSAddr and stops it when t
// ends.
func StartDNS(t testing.TB, hosts []Host) *DNSServer {
	t.Helper()
	recs, err := zone(hosts)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", DNSAddr)
	if err != nil {
		t.Fatalf("interop: DNS server needs %s (root, nothing else on it): %v", DNSAddr, err)
	}
	l, err := net.Listen("tcp", DNSAddr)
	if err != nil {
		pc.Close()
		t.Fatalf("interop: DNS server needs %s/tcp: %v", DNSAddr, err)
	}
	d := &DNSServer{records: recs}
	h := dns.HandlerFunc(d.serveDNS)
	d.udp = &dns.Server{PacketConn: pc, Handler: h}
	d.tcp = &dns.Server{Listener: l, Handler: h}
	for _, s := range []*dns.Server{d.udp, d.tcp} {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			_ = s.ActivateAndServe()
		}()
	}
	t.Cleanup(d.close)
	return d
}

func (d *DNSServer) close() {
	_ = d.udp.Shutdown()
	_ = d.tcp.Shutdown()
	d.wg.Wait()
}

// serveDNS answers authoritatively for the zone; anything outside it is
// REFUSED (the peers have no business resolving other names).
func (d *DNSServer) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	rrs, ok := d.records[name]
	switch {
	case ok:
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
	case name == "test." || strings.HasSuffix(name, ".test."):
		m.Rcode = dns.RcodeNameError
	default:
		m.Rcode = dns.RcodeRefused
	}
	_ = w.WriteMsg(m)
}
