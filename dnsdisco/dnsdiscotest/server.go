package dnsdiscotest

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/xmppfed/xmppfed/dnsdisco"
)

// DefaultTTL is the TTL of records added by the Add helpers.
const DefaultTTL = 300

// SOA timers used in negative answers: the negative-caching time is
// min(SOATTL, SOAMinimum) (RFC 2308 §5).
const (
	SOATTL     = 300
	SOAMinimum = 60
)

// Server is a loopback DNS server. Its methods are safe for concurrent use.
type Server struct {
	// Addr is "127.0.0.1:port", served over UDP and TCP.
	Addr string

	udp, tcp *dns.Server
	dir      string // temp dir holding the empty hosts file

	mu       sync.Mutex
	rrs      map[string][]dns.RR // lower-case FQDN -> records
	secure   map[string]bool     // lower-case FQDN -> AD for it and below
	rcode    map[string]int      // forced rcode per name
	truncate map[string]bool     // UDP answers truncated per name
	queries  int
	tcpQ     int
	perName  map[string]int // "name TYPE" -> count
}

// NewServer starts a server on 127.0.0.1 and returns once it answers.
// It panics if it cannot listen.
func NewServer() *Server {
	s := &Server{
		rrs:      make(map[string][]dns.RR),
		secure:   make(map[string]bool),
		rcode:    make(map[string]int),
		truncate: make(map[string]bool),
		perName:  make(map[string]int),
	}
	var pc net.PacketConn
	var ln net.Listener
	var err error
	for range 20 {
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			continue
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		panic(fmt.Sprintf("dnsdiscotest: failed to listen on 127.0.0.1: %v", err))
	}
	s.Addr = pc.LocalAddr().String()
	dir, err := os.MkdirTemp("", "dnsdiscotest")
	if err != nil {
		panic(fmt.Sprintf("dnsdiscotest: temp dir: %v", err))
	}
	s.dir = dir
	if err := os.WriteFile(filepath.Join(dir, "hosts"), nil, 0o644); err != nil {
		panic(fmt.Sprintf("dnsdiscotest: hosts file: %v", err))
	}
	h := dns.HandlerFunc(s.serve)
	udpUp, tcpUp := make(chan struct{}), make(chan struct{})
	s.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() { close(udpUp) }}
	s.tcp = &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: func() { close(tcpUp) }}
	errc := make(chan error, 2)
	go func() { errc <- s.udp.ActivateAndServe() }()
	go func() { errc <- s.tcp.ActivateAndServe() }()
	for _, up := range []chan struct{}{udpUp, tcpUp} {
		select {
		case <-up:
		case err := <-errc:
			panic(fmt.Sprintf("dnsdiscotest: serve: %v", err))
		}
	}
	return s
}

// Close stops the server and removes its temporary files.
func (s *Server) Close() {
	_ = s.udp.Shutdown()
	_ = s.tcp.Shutdown()
	_ = os.RemoveAll(s.dir)
}

// HostsFile returns the path of the (initially empty) hosts file used by
// [Server.Resolver]. Tests may write to it.
func (s *Server) HostsFile() string { return filepath.Join(s.dir, "hosts") }

// Resolver returns a new resolver that asks only this server, with a short
// timeout (500ms, 1 attempt) and HostsFile pointing at [Server.HostsFile],
// so /etc/hosts cannot interfere. The short timeout makes a missing record
// fail a test quickly; a test that has hundreds of domains negotiate at
// once on a busy machine should raise Timeout and Attempts on the
// returned resolver (xmppfed's soak test uses 2s and 3), since a lookup
// that times out bounces the stanzas queued for its domain.
func (s *Server) Resolver() *dnsdisco.Resolver {
	return &dnsdisco.Resolver{
		Servers:   []string{s.Addr},
		HostsFile: s.HostsFile(),
		Timeout:   500 * time.Millisecond,
		Attempts:  1,
	}
}

func fqdn(name string) string { return strings.ToLower(dns.Fqdn(name)) }

// AddSRV adds an SRV record for service.domain, e.g. service
// "_xmpp-server._tcp" or "_xmpps-server._tcp". target "." is allowed.
func (s *Server) AddSRV(service, domain, target string, port, priority, weight uint16) {
	s.AddRR(&dns.SRV{
		Hdr:      dns.RR_Header{Name: fqdn(service + "." + domain), Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: DefaultTTL},
		Priority: priority, Weight: weight, Port: port, Target: dns.Fqdn(target),
	})
}

// AddHost adds A and/or AAAA records for host.
func (s *Server) AddHost(host string, addrs ...netip.Addr) {
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() {
			s.AddRR(&dns.A{Hdr: dns.RR_Header{Name: fqdn(host), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: DefaultTTL}, A: a.AsSlice()})
		} else {
			s.AddRR(&dns.AAAA{Hdr: dns.RR_Header{Name: fqdn(host), Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: DefaultTTL}, AAAA: a.AsSlice()})
		}
	}
}

// AddCNAME makes name an alias of target.
func (s *Server) AddCNAME(name, target string) {
	s.AddRR(&dns.CNAME{Hdr: dns.RR_Header{Name: fqdn(name), Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: DefaultTTL}, Target: dns.Fqdn(target)})
}

// AddTLSA adds a TLSA record at _port._tcp.host.
func (s *Server) AddTLSA(host string, port uint16, usage, selector, matchingType uint8, data []byte) {
	s.AddRR(&dns.TLSA{
		Hdr:   dns.RR_Header{Name: fqdn("_" + strconv.Itoa(int(port)) + "._tcp." + host), Rrtype: dns.TypeTLSA, Class: dns.ClassINET, Ttl: DefaultTTL},
		Usage: usage, Selector: selector, MatchingType: matchingType, Certificate: hex.EncodeToString(data),
	})
}

// AddRR adds arbitrary records. Owner names are matched case-insensitively.
func (s *Server) AddRR(rrs ...dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range rrs {
		rr = dns.Copy(rr)
		rr.Header().Name = fqdn(rr.Header().Name)
		if rr.Header().Class == 0 {
			rr.Header().Class = dns.ClassINET
		}
		s.rrs[rr.Header().Name] = append(s.rrs[rr.Header().Name], rr)
	}
}

// SetSecure makes answers for name and names under it carry the AD bit,
// as a validating resolver would for a signed zone.
func (s *Server) SetSecure(name string, secure bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secure[fqdn(name)] = secure
}

// SetRcode makes every query for name get rcode (for example
// dns.RcodeServerFailure); dns.RcodeSuccess restores normal answers.
func (s *Server) SetRcode(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rcode == dns.RcodeSuccess {
		delete(s.rcode, fqdn(name))
		return
	}
	s.rcode[fqdn(name)] = rcode
}

// SetTruncate makes UDP answers for name empty with the TC bit set, so
// clients must retry over TCP, where the full answer is given.
func (s *Server) SetTruncate(name string, truncate bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncate[fqdn(name)] = truncate
}

// Queries returns the total number of queries received (UDP and TCP).
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

// TCPQueries returns the number of queries received over TCP.
func (s *Server) TCPQueries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tcpQ
}

// QueriesFor returns how many queries asked for name with type qtype.
func (s *Server) QueriesFor(name string, qtype uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perName[fqdn(name)+" "+dns.TypeToString[qtype]]
}

// isSecure reports whether name is at or below a name marked secure.
// Caller holds s.mu.
func (s *Server) isSecure(name string) bool {
	for n := name; ; {
		if v, ok := s.secure[n]; ok {
			return v
		}
		i := strings.IndexByte(n, '.')
		if i < 0 || i == len(n)-1 {
			return s.secure["."]
		}
		n = n[i+1:]
	}
}

// exists reports whether name owns records or has names below it
// (an empty non-terminal). Caller holds s.mu.
func (s *Server) exists(name string) bool {
	if len(s.rrs[name]) > 0 {
		return true
	}
	for n := range s.rrs {
		if strings.HasSuffix(n, "."+name) {
			return true
		}
	}
	return false
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	if len(req.Question) != 1 {
		m.SetRcode(req, dns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	q := req.Question[0]
	name := fqdn(q.Name)
	_, isTCP := w.RemoteAddr().(*net.TCPAddr)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries++
	if isTCP {
		s.tcpQ++
	}
	s.perName[name+" "+dns.TypeToString[q.Qtype]]++
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(1232, opt.Do())
	}
	if rc, ok := s.rcode[name]; ok {
		m.Rcode = rc
		_ = w.WriteMsg(m)
		return
	}
	if s.truncate[name] && !isTCP {
		m.Truncated = true
		_ = w.WriteMsg(m)
		return
	}
	secure := s.isSecure(name)
	cur := name
	seen := map[string]bool{}
	for range 16 {
		if seen[cur] {
			break // CNAME loop: answer what we have, like a resolver giving up
		}
		seen[cur] = true
		var data []dns.RR
		var cname *dns.CNAME
		for _, rr := range s.rrs[cur] {
			if rr.Header().Rrtype == q.Qtype {
				data = append(data, dns.Copy(rr))
			} else if c, ok := rr.(*dns.CNAME); ok && q.Qtype != dns.TypeCNAME {
				cname = c
			}
		}
		if len(data) > 0 {
			m.Answer = append(m.Answer, data...)
			break
		}
		if cname == nil {
			if !s.exists(cur) {
				m.Rcode = dns.RcodeNameError
			}
			if len(m.Answer) == 0 || m.Rcode == dns.RcodeNameError {
				m.Ns = append(m.Ns, s.soa(cur))
			}
			break
		}
		m.Answer = append(m.Answer, dns.Copy(cname))
		cur = fqdn(cname.Target)
		secure = secure && s.isSecure(cur)
	}
	m.AuthenticatedData = secure && req.AuthenticatedData || secure && req.IsEdns0() != nil && req.IsEdns0().Do()
	_ = w.WriteMsg(m)
}

// soa returns the SOA placed in negative answers for name: its zone is
// taken to be the last two labels.
func (s *Server) soa(name string) dns.RR {
	labels := dns.SplitDomainName(name)
	zone := "."
	if len(labels) >= 2 {
		zone = dns.Fqdn(strings.Join(labels[len(labels)-2:], "."))
	}
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: SOATTL},
		Ns:  "ns." + strings.TrimPrefix(zone, "."), Mbox: "hostmaster." + strings.TrimPrefix(zone, "."),
		Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: SOAMinimum,
	}
}
