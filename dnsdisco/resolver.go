package dnsdisco

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/xmppfed/xmppfed/internal/deadline"
)

// Defaults used when neither the Resolver fields nor resolv.conf say otherwise.
const (
	defaultTimeout  = 2 * time.Second
	defaultAttempts = 2
	// ednsUDPSize is the EDNS0 buffer size recommended by DNS Flag Day 2020.
	ednsUDPSize = 1232
	// maxCNAMEHops bounds CNAME chains, in answers and chased by us.
	maxCNAMEHops = 8
)

// Resolver finds the servers of an XMPP domain and their addresses.
//
// The zero value is ready to use and reads /etc/resolv.conf and /etc/hosts.
// A Resolver is safe for concurrent use. Do not change its exported fields
// after the first lookup; use [Resolver.SetOverride] and
// [Resolver.DeleteOverride] to change overrides at any time.
type Resolver struct {
	// Servers lists nameservers as "host:port" ("host" alone means port
	// 53). Nil means the nameservers of ResolvConf.
	Servers []string
	// ResolvConf is the resolv.conf(5) file read when Servers is nil, and
	// for the timeout and attempts defaults. Empty means "/etc/resolv.conf".
	ResolvConf string
	// HostsFile is consulted for A/AAAA before DNS, so a host that only
	// appears there is reachable. Empty means "/etc/hosts". It is re-read
	// when its modification time or size changes; a missing file is empty.
	HostsFile string
	// Timeout bounds each query attempt. Zero means resolv.conf's timeout
	// when Servers is nil, else 2s.
	Timeout time.Duration
	// Attempts is the number of tries per nameserver. Zero means
	// resolv.conf's attempts when Servers is nil, else 2.
	Attempts int
	// CacheSize is the maximum number of cached responses (one per name
	// and type). Zero means 4096; negative disables the cache.
	CacheSize int
	// Rand returns a uniform int in [0,n); it drives the RFC 2782 weighted
	// order. Nil means math/rand/v2. It must be safe for concurrent use if
	// the Resolver is used concurrently.
	Rand func(n int) int
	// Logger receives debug logs of queries and retries. Nil is silent.
	Logger *slog.Logger

	now func() time.Time // injectable clock for tests; nil: time.Now

	mu        sync.Mutex
	loaded    bool
	conf      clientConf
	confErr   error
	cache     *lruCache
	overrides map[string][]Override
	hosts     hostsState
}

// clientConf is the effective nameserver configuration.
type clientConf struct {
	servers  []string
	timeout  time.Duration
	attempts int
}

func (r *Resolver) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

func (r *Resolver) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// config loads the configuration once. Caller must hold r.mu.
func (r *Resolver) configLocked() (clientConf, error) {
	if r.loaded {
		return r.conf, r.confErr
	}
	r.loaded = true
	if r.CacheSize >= 0 {
		n := r.CacheSize
		if n == 0 {
			n = defaultCacheSize
		}
		r.cache = newLRUCache(n)
	}
	c := clientConf{timeout: r.Timeout, attempts: r.Attempts}
	if r.Servers == nil {
		path := r.ResolvConf
		if path == "" {
			path = "/etc/resolv.conf"
		}
		cc, err := dns.ClientConfigFromFile(path)
		if err != nil {
			r.confErr = fmt.Errorf("%w: reading ResolvConf %q: %v", ErrServerFailure, path, err)
			return r.conf, r.confErr
		}
		for _, s := range cc.Servers {
			c.servers = append(c.servers, net.JoinHostPort(s, cc.Port))
		}
		if c.timeout == 0 && cc.Timeout > 0 {
			c.timeout = time.Duration(cc.Timeout) * time.Second
		}
		if c.attempts == 0 && cc.Attempts > 0 {
			c.attempts = cc.Attempts
		}
		if len(c.servers) == 0 {
			r.confErr = fmt.Errorf("%w: no nameserver in ResolvConf %q", ErrServerFailure, path)
			return r.conf, r.confErr
		}
	} else {
		for _, s := range r.Servers {
			hp, err := normServer(s)
			if err != nil {
				r.confErr = fmt.Errorf("%w: Servers entry %q: %v", ErrServerFailure, s, err)
				return r.conf, r.confErr
			}
			c.servers = append(c.servers, hp)
		}
		if len(c.servers) == 0 {
			r.confErr = fmt.Errorf("%w: Servers is empty", ErrServerFailure)
			return r.conf, r.confErr
		}
	}
	if c.timeout <= 0 {
		c.timeout = defaultTimeout
	}
	if c.attempts <= 0 {
		c.attempts = defaultAttempts
	}
	r.conf = c
	return c, nil
}

// normServer checks a "host:port" (or bare IP) nameserver address.
func normServer(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if a, ok := parseIPLiteral(s); ok {
			return net.JoinHostPort(a.String(), "53"), nil
		}
		return "", err
	}
	if host == "" {
		return "", errors.New("empty host")
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", fmt.Errorf("bad port %q", port)
	}
	return s, nil
}

// query returns the response for (name, qtype), from the cache or from the
// nameservers. name is an A-label without trailing dot. Errors are
// *LookupError with Domain left for the caller to fill in.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*response, error) {
	fqdn := dns.Fqdn(strings.ToLower(name))
	key := cacheKey{fqdn, qtype}
	r.mu.Lock()
	conf, err := r.configLocked()
	var cached *response
	if err == nil && r.cache != nil {
		cached = r.cache.get(key, r.clock())
	}
	r.mu.Unlock()
	if err != nil {
		return nil, &LookupError{Name: name, Type: dns.TypeToString[qtype], Err: err}
	}
	if cached != nil {
		return cached, nil
	}
	resp, err := r.exchange(ctx, conf, fqdn, qtype)
	if err != nil {
		return nil, &LookupError{Name: name, Type: dns.TypeToString[qtype], Err: err}
	}
	r.mu.Lock()
	if r.cache != nil {
		r.cache.put(key, resp, r.clock())
	}
	r.mu.Unlock()
	return resp, nil
}

// cached reports whether the cache holds an unexpired answer for every
// (name, qtype) right now. It is a hint for running lookups inline; the
// lookups themselves still go through query.
func (r *Resolver) cached(qtype uint16, names ...string) bool {
	now := r.clock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cache == nil {
		return false
	}
	for _, n := range names {
		if !r.cache.fresh(cacheKey{dns.Fqdn(strings.ToLower(n)), qtype}, now) {
			return false
		}
	}
	return true
}

// exchange asks each nameserver in turn, Attempts rounds, Timeout each.
// Only NOERROR and NXDOMAIN are answers; SERVFAIL and other rcodes move on
// to the next server and, if nobody answers better, are reported as
// ErrServerFailure. Nothing heard at all is ErrTimeout.
func (r *Resolver) exchange(ctx context.Context, conf clientConf, fqdn string, qtype uint16) (*response, error) {
	q := new(dns.Msg)
	q.SetQuestion(fqdn, qtype)
	q.RecursionDesired = true
	// RFC 6840 §5.7: set AD in queries so a validating resolver tells us
	// whether the answer is authenticated; DO (RFC 3225) for the same.
	q.AuthenticatedData = true
	q.SetEdns0(ednsUDPSize, true)

	log := r.log()
	var failure error // last SERVFAIL/REFUSED/bad answer
	var lastNet error
	for attempt := 0; attempt < conf.attempts; attempt++ {
		for _, srv := range conf.servers {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			m, err := r.exchangeOne(ctx, conf.timeout, q, srv)
			if err != nil {
				if cerr := ctx.Err(); cerr != nil {
					return nil, cerr
				}
				log.Debug("dnsdisco: query failed", "name", fqdn, "type", dns.TypeToString[qtype], "server", srv, "attempt", attempt+1, "err", err)
				lastNet = fmt.Errorf("%s: %v", srv, err)
				continue
			}
			resp, err := parseResponse(q, m)
			if err != nil {
				log.Debug("dnsdisco: bad answer", "name", fqdn, "type", dns.TypeToString[qtype], "server", srv, "err", err)
				failure = fmt.Errorf("%w from %s: %v", ErrServerFailure, srv, err)
				continue
			}
			return resp, nil
		}
	}
	if failure != nil {
		return nil, failure
	}
	return nil, fmt.Errorf("%w: no answer from %s after %d attempts of %v (%v)",
		ErrTimeout, strings.Join(conf.servers, ", "), conf.attempts, conf.timeout, lastNet)
}

// exchangeOne sends q to srv over UDP and retries over TCP when the answer
// is truncated (RFC 1035 §4.2.1, RFC 7766 §5). The caller's ctx cancels the
// exchange even without a deadline.
func (r *Resolver) exchangeOne(ctx context.Context, timeout time.Duration, q *dns.Msg, srv string) (*dns.Msg, error) {
	m, err := exchangeNet(ctx, "udp", timeout, q, srv)
	if err != nil {
		return nil, err
	}
	if m.Truncated {
		r.log().Debug("dnsdisco: truncated answer, retrying over TCP", "name", q.Question[0].Name, "server", srv)
		return exchangeNet(ctx, "tcp", timeout, q, srv)
	}
	return m, nil
}

func exchangeNet(ctx context.Context, network string, timeout time.Duration, q *dns.Msg, srv string) (*dns.Msg, error) {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &dns.Client{Net: network, Timeout: timeout, UDPSize: ednsUDPSize}
	conn, err := c.DialContext(actx, srv)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// miekg/dns only honours ctx deadlines; make cancellation interrupt
	// blocked reads too.
	defer deadline.Watch(actx, conn.SetDeadline)()
	m, _, err := c.ExchangeWithConnContext(actx, q, conn)
	return m, err
}

// parseResponse checks that m answers q and extracts what we use.
func parseResponse(q, m *dns.Msg) (*response, error) {
	if !m.Response {
		return nil, errors.New("message is not a response")
	}
	if len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, q.Question[0].Name) ||
		m.Question[0].Qtype != q.Question[0].Qtype {
		return nil, errors.New("answer does not match the question")
	}
	switch m.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	default:
		// SERVFAIL is also how a validating resolver reports a bogus
		// DNSSEC answer (RFC 4035 §5.5).
		return nil, fmt.Errorf("rcode %s", dns.RcodeToString[m.Rcode])
	}
	resp := &response{rcode: m.Rcode, answer: m.Answer, secure: m.AuthenticatedData}
	if m.Rcode == dns.RcodeNameError {
		resp.answer = nil
	}
	resp.ttl = responseTTL(m, resp.answer)
	return resp, nil
}

// errCNAMELoop reports a CNAME chain that loops or is too long.
var errCNAMELoop = errors.New("CNAME chain loops or exceeds 8 hops")

// followChain walks the CNAME chain starting at qname inside answer and
// returns the records of type qtype owned by the chain's end, and that end
// name (FQDN, lower case). Records for other owners are ignored, so a
// response can never inject data for a name not on the chain.
func followChain(qname string, qtype uint16, answer []dns.RR) ([]dns.RR, string, error) {
	name := strings.ToLower(dns.Fqdn(qname))
	seen := map[string]bool{name: true}
	for hop := 0; ; hop++ {
		var out []dns.RR
		var next string
		for _, rr := range answer {
			h := rr.Header()
			if !strings.EqualFold(h.Name, name) || h.Class != dns.ClassINET {
				continue
			}
			if h.Rrtype == qtype {
				out = append(out, rr)
			} else if c, ok := rr.(*dns.CNAME); ok && qtype != dns.TypeCNAME && next == "" {
				next = strings.ToLower(dns.Fqdn(c.Target))
			}
		}
		if len(out) > 0 || next == "" {
			return out, name, nil
		}
		if seen[next] || hop >= maxCNAMEHops {
			return nil, name, errCNAMELoop
		}
		seen[next] = true
		name = next
	}
}
