package dnsdisco

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Default XMPP server-to-server ports (RFC 6120 §3.2.2, XEP-0368 §2).
const (
	defaultPort          = 5269
	defaultDirectTLSPort = 5270
	// maxParallelHosts bounds concurrent address lookups per LookupServer.
	maxParallelHosts = 8
	// maxSRVTargets bounds how many SRV records one lookup uses.
	maxSRVTargets = 64
)

// SRV service labels (RFC 6120 §3.2.1, XEP-0368 §3).
const (
	serviceSTARTTLS  = "_xmpp-server._tcp."
	serviceDirectTLS = "_xmpps-server._tcp."
)

// Target is one candidate for a server-to-server connection.
type Target struct {
	Host      string // A-label host name, no trailing dot (or an IP literal from an override)
	Port      uint16 // TCP port to connect to
	DirectTLS bool   // from _xmpps-server._tcp (XEP-0368): TLS first, no STARTTLS
	Priority  uint16 // from the SRV record (0 for fallback/override)
	Weight    uint16 // from the SRV record (0 for fallback/override)
	// Secure reports that the SRV answer (or, for the fallback, both SRV
	// denials) carried the AD bit from a validating resolver. Hosts trust
	// it only if the path to that resolver is trusted (RFC 6840 §5.8).
	Secure bool
	// Addrs holds the AAAA then A answers (both families are always
	// queried); nil if Err != nil.
	Addrs []netip.Addr
	// AddrsSecure reports that every address answer carried the AD bit.
	// Always false for hosts-file and IP-literal addresses.
	AddrsSecure bool
	// Err says why this target has no address (a *LookupError), else nil.
	Err error
}

// Override replaces SRV discovery for one domain: a partner's proxy FQDN,
// or host:port for tests.
type Override struct {
	Host      string // host name (resolved via hosts file / AAAA / A) or IP literal
	Port      uint16 // 0: 5269 (or 5270 when DirectTLS)
	DirectTLS bool   // TLS from the first byte (XEP-0368) instead of STARTTLS
}

// TLSA is one TLSA record (RFC 6698 §2.1). Its layout is identical to
// certs.TLSA so callers convert with certs.TLSA(t).
type TLSA struct {
	Usage        uint8  // certificate usage: 2 DANE-TA, 3 DANE-EE (RFC 7218)
	Selector     uint8  // 0 full certificate, 1 SubjectPublicKeyInfo
	MatchingType uint8  // 0 exact, 1 SHA-256, 2 SHA-512
	Data         []byte // certificate association data, binary (not hex)
}

// SetOverride makes LookupServer return targets for domain instead of
// asking DNS for SRV records; host names in targets are still resolved to
// addresses. It validates domain and every target and changes nothing on
// error. Targets keep the given order.
func (r *Resolver) SetOverride(domain string, targets ...Override) error {
	if _, ok := parseIPLiteral(domain); ok {
		return &LookupError{Domain: domain, Err: fmt.Errorf("%w: %q is an IP literal, which needs no override", ErrInvalidName, domain)}
	}
	d, err := toASCII(domain)
	if err != nil {
		return &LookupError{Domain: domain, Err: err}
	}
	if len(targets) == 0 {
		return &LookupError{Domain: domain, Err: fmt.Errorf("%w: SetOverride needs at least one target (use DeleteOverride to remove)", ErrInvalidName)}
	}
	out := make([]Override, len(targets))
	for i, t := range targets {
		n, err := normOverride(t)
		if err != nil {
			return &LookupError{Domain: domain, Err: fmt.Errorf("override target %d Host: %w", i, err)}
		}
		out[i] = n
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.overrides == nil {
		r.overrides = make(map[string][]Override)
	}
	r.overrides[d] = out
	return nil
}

// normOverride validates t's host (an IP literal, or a name converted to
// its A-label) and fills in the default port.
func normOverride(t Override) (Override, error) {
	if a, ok := parseIPLiteral(t.Host); ok {
		t.Host = a.String()
	} else {
		h, err := toASCII(t.Host)
		if err != nil {
			return t, err
		}
		t.Host = h
	}
	if t.Port == 0 {
		t.Port = defaultPort
		if t.DirectTLS {
			t.Port = defaultDirectTLSPort
		}
	}
	return t, nil
}

// LookupHost returns the connection candidate for one explicitly
// configured server, such as a partner's proxy FQDN: hostport is "host",
// "host:port", an IP literal or "[IPv6]:port"; without a port, port is
// used (0 means 5269). No SRV record is queried: the host is resolved like
// an override target (hosts file, then AAAA and A), and the result and
// errors are those of LookupServer for an override. An invalid host or
// port is a *LookupError wrapping ErrInvalidName, and nothing is queried.
func (r *Resolver) LookupHost(ctx context.Context, hostport string, port uint16) ([]Target, error) {
	o, err := parseHostPort(hostport, port)
	if err != nil {
		return nil, err
	}
	return r.resolveCandidates(ctx, hostport, []Target{{Host: o.Host, Port: o.Port}}, false)
}

// parseHostPort splits and validates LookupHost's argument: the host (an
// IP literal, or a name converted to its A-label) and the port (port when
// none is given, 0 meaning 5269). Errors are *LookupError wrapping
// ErrInvalidName.
func parseHostPort(hostport string, port uint16) (Override, error) {
	host := hostport
	if _, ok := parseIPLiteral(hostport); !ok && strings.Contains(hostport, ":") {
		h, p, err := net.SplitHostPort(hostport)
		if err != nil {
			return Override{}, &LookupError{Domain: hostport, Err: fmt.Errorf("%w: %v", ErrInvalidName, err)}
		}
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return Override{}, &LookupError{Domain: hostport, Err: fmt.Errorf("%w: port %q is not a number from 1 to 65535", ErrInvalidName, p)}
		}
		host, port = h, uint16(n)
	}
	o, err := normOverride(Override{Host: host, Port: port})
	if err != nil {
		return Override{}, &LookupError{Domain: hostport, Err: err}
	}
	return o, nil
}

// DeleteOverride removes the override for domain, if any.
func (r *Resolver) DeleteOverride(domain string) {
	d, err := toASCII(domain)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.overrides, d)
}

// srvSet is the outcome of one SRV query.
type srvSet struct {
	recs   []srvRecord
	exists bool // some SRV record, possibly "."
	noSvc  bool // the set is a single "." record
	secure bool
	err    error
}

// LookupServer returns the connection candidates for the XMPP domain, in
// the order they should be tried (RFC 6120 §3.2, XEP-0368 §3):
//
//   - domain is IDNA-converted (Lookup profile) and validated first; an
//     invalid name is never queried. An IP literal yields one candidate
//     IP:5269 without any query.
//   - an override set with SetOverride replaces the SRV step.
//   - otherwise _xmpps-server._tcp and _xmpp-server._tcp SRV records are
//     merged into one list ordered by priority, then RFC 2782 weighted
//     random order. A set that is a single "." record contributes nothing;
//     if no set contributes and one was ".", the error is ErrNoService.
//   - with no SRV records at all the candidate is domain:5269 (RFC 6120
//     §3.2.2 fallback); if domain does not exist the error is ErrNotFound.
//   - a failed SRV query (timeout, SERVFAIL) is an error: falling back to
//     the A/AAAA records then could be a downgrade. When only one of the
//     two queries fails and the other gives usable records, those records
//     are the candidates; when the domain itself is in the hosts file, its
//     entry there is the candidate (DNS may be unreachable altogether).
//
// Each target's AAAA and A records are resolved (hosts file first). A
// target without address keeps its place with Target.Err set. When no
// target has an address, LookupServer returns the targets together with a
// *LookupError wrapping ErrNoAddress (or ErrNotFound for a missing
// fallback host, or ErrTimeout/ErrServerFailure when an address lookup
// failed temporarily). Any other error returns nil targets. All errors are
// *LookupError.
func (r *Resolver) LookupServer(ctx context.Context, domain string) ([]Target, error) {
	if a, ok := parseIPLiteral(domain); ok {
		return []Target{{Host: a.String(), Port: defaultPort, Addrs: []netip.Addr{a}}}, nil
	}
	d, err := toASCII(domain)
	if err != nil {
		return nil, &LookupError{Domain: domain, Err: err}
	}
	r.mu.Lock()
	ov, hasOv := r.overrides[d]
	r.mu.Unlock()

	var targets []Target
	fallback := false
	switch {
	case hasOv:
		for _, o := range ov {
			targets = append(targets, Target{Host: o.Host, Port: o.Port, DirectTLS: o.DirectTLS})
		}
	default:
		var sets [2]srvSet
		names := [2]string{serviceDirectTLS + d, serviceSTARTTLS + d}
		parallel(!r.cached(dns.TypeSRV, names[:]...), 2, func(i int) {
			sets[i] = r.lookupSRV(ctx, domain, names[i], i == 0)
		})
		for i, s := range sets {
			if s.err == nil {
				continue
			}
			// A failed set is not "no SRV" (RFC 6120 §3.2.1): treating it
			// so would let whoever breaks the query force the A/AAAA
			// fallback. So the lookup fails, unless the other set gave
			// usable records: then those are tried, exactly the list an
			// unbroken lookup would contain minus the failed service (both
			// sets lead to TLS; the policy of the caller decides the rest).
			if len(sets[1-i].recs) > 0 {
				r.log().Debug("dnsdisco: one SRV set failed, using the other", "domain", domain, "err", s.err)
				continue
			}
			// The one exception: the operator listed the domain itself in
			// the hosts file. That is local configuration no network
			// attacker can forge, and it must keep working when no DNS
			// server answers at all (an isolated network, a dead resolver).
			if addrs := r.hostsLookup(d); len(addrs) > 0 {
				r.log().Debug("dnsdisco: SRV lookup failed, using the hosts file entry", "domain", domain, "err", s.err)
				return []Target{{Host: d, Port: defaultPort, Addrs: addrs}}, nil
			}
			return nil, s.err
		}
		var recs []srvRecord
		for _, s := range sets {
			recs = append(recs, s.recs...)
		}
		switch {
		case len(recs) > 0:
			if len(recs) > maxSRVTargets {
				recs = recs[:maxSRVTargets]
			}
			for _, s := range orderSRV(recs, r.randIntN) {
				targets = append(targets, Target{Host: s.Target, Port: s.Port, DirectTLS: s.DirectTLS,
					Priority: s.Priority, Weight: s.Weight, Secure: s.Secure})
			}
		case sets[0].noSvc || sets[1].noSvc:
			// RFC 6120 §3.2.1: "." means no service; no A/AAAA fallback.
			return nil, &LookupError{Domain: domain, Name: serviceSTARTTLS + d, Type: "SRV", Err: ErrNoService}
		case sets[0].exists || sets[1].exists:
			// Records exist but all were unusable (e.g. invalid targets).
			return nil, &LookupError{Domain: domain, Name: serviceSTARTTLS + d, Type: "SRV",
				Err: fmt.Errorf("%w: SRV records have no usable target", ErrNoAddress)}
		default:
			// RFC 6120 §3.2.2: no SRV at all, fall back to the domain itself.
			fallback = true
			targets = []Target{{Host: d, Port: defaultPort, Secure: sets[0].secure && sets[1].secure}}
		}
	}
	return r.resolveCandidates(ctx, domain, targets, fallback)
}

// resolveCandidates resolves the addresses of targets (the candidates for
// domain; fallback: the RFC 6120 §3.2.2 A/AAAA fallback) and returns them
// with the document-level error LookupServer describes.
func (r *Resolver) resolveCandidates(ctx context.Context, domain string, targets []Target, fallback bool) ([]Target, error) {
	d := targets[0].Host
	if a, err := toASCII(domain); err == nil {
		d = a
	}
	r.resolveTargets(ctx, domain, targets)
	if err := ctx.Err(); err != nil {
		return nil, &LookupError{Domain: domain, Name: d, Err: err}
	}
	// Document-level error: the first temporary failure wins (a retry may
	// succeed), else not-found for a missing fallback host, else no address.
	var firstTemp, firstErr *LookupError
	for _, t := range targets {
		if t.Err == nil {
			return targets, nil
		}
		var le *LookupError
		if errors.As(t.Err, &le) {
			if firstErr == nil {
				firstErr = le
			}
			if firstTemp == nil && le.Temporary() {
				firstTemp = le
			}
		}
	}
	switch {
	case firstTemp != nil:
		return targets, firstTemp
	case fallback && firstErr != nil && errors.Is(firstErr, ErrNotFound):
		return targets, &LookupError{Domain: domain, Name: d, Type: firstErr.Type, Err: ErrNotFound}
	default:
		return targets, &LookupError{Domain: domain, Name: d, Err: fmt.Errorf("%w: none of %d targets has an address", ErrNoAddress, len(targets))}
	}
}

// lookupSRV queries one SRV set. directTLS marks _xmpps-server records.
func (r *Resolver) lookupSRV(ctx context.Context, domain, name string, directTLS bool) srvSet {
	resp, err := r.query(ctx, name, dns.TypeSRV)
	if err != nil {
		le := err.(*LookupError)
		le.Domain = domain
		return srvSet{err: le}
	}
	set := srvSet{secure: resp.secure}
	rrs, _, err := followChain(name, dns.TypeSRV, resp.answer)
	if err != nil {
		return srvSet{err: &LookupError{Domain: domain, Name: name, Type: "SRV", Err: fmt.Errorf("%w: %v", ErrServerFailure, err)}}
	}
	for _, rr := range rrs {
		s, ok := rr.(*dns.SRV)
		if !ok {
			continue
		}
		set.exists = true
		if s.Target == "." {
			// RFC 2782: "." means the service is decidedly not available.
			if len(rrs) == 1 {
				set.noSvc = true
			}
			continue
		}
		host, err := toASCII(s.Target)
		if err != nil {
			r.log().Debug("dnsdisco: skipping SRV record with invalid target", "name", name, "target", s.Target, "err", err)
			continue
		}
		set.recs = append(set.recs, srvRecord{Target: host, Port: s.Port, Priority: s.Priority,
			Weight: s.Weight, DirectTLS: directTLS, Secure: resp.secure})
	}
	return set
}

// hostResult is the address outcome for one host.
type hostResult struct {
	addrs  []netip.Addr
	secure bool
	err    error
}

// resolveTargets fills Addrs/AddrsSecure/Err of every target, resolving each
// distinct host once, at most maxParallelHosts at a time.
func (r *Resolver) resolveTargets(ctx context.Context, domain string, targets []Target) {
	var hosts []string
	for _, t := range targets {
		if !slices.Contains(hosts, t.Host) {
			hosts = append(hosts, t.Host)
		}
	}
	results := make([]hostResult, len(hosts))
	concurrent := len(hosts) > 1 && !(r.cached(dns.TypeAAAA, hosts...) && r.cached(dns.TypeA, hosts...))
	parallel(concurrent, len(hosts), func(i int) {
		results[i] = r.resolveHost(ctx, domain, hosts[i]) // each call owns results[i]
	})
	for i := range targets {
		res := results[slices.Index(hosts, targets[i].Host)]
		if res.err != nil {
			targets[i].Err = res.err
			continue
		}
		targets[i].Addrs = slices.Clone(res.addrs)
		targets[i].AddrsSecure = res.secure
	}
}

// resolveHost returns host's addresses: an IP literal as is, else the hosts
// file, else AAAA and A from DNS (both always queried), AAAA first.
func (r *Resolver) resolveHost(ctx context.Context, domain, host string) hostResult {
	if a, ok := parseIPLiteral(host); ok {
		return hostResult{addrs: []netip.Addr{a}}
	}
	if addrs := r.hostsLookup(host); len(addrs) > 0 {
		return hostResult{addrs: addrs}
	}
	var res [2]struct {
		addrs  []netip.Addr
		secure bool
		nx     bool
		err    error
	}
	qtypes := [2]uint16{dns.TypeAAAA, dns.TypeA}
	parallel(!(r.cached(dns.TypeAAAA, host) && r.cached(dns.TypeA, host)), 2, func(i int) {
		res[i].addrs, res[i].secure, res[i].nx, res[i].err = r.lookupAddr(ctx, domain, host, qtypes[i])
	})
	var out hostResult
	out.secure = true
	for _, x := range res {
		out.addrs = append(out.addrs, x.addrs...)
		out.secure = out.secure && x.secure
	}
	if len(out.addrs) > 0 {
		if res[0].err != nil || res[1].err != nil {
			out.secure = false
		}
		return out
	}
	out.secure = false
	switch {
	case res[0].err != nil:
		out.err = res[0].err
	case res[1].err != nil:
		out.err = res[1].err
	case res[0].nx && res[1].nx:
		out.err = &LookupError{Domain: domain, Name: host, Type: "A", Err: ErrNotFound}
	default:
		out.err = &LookupError{Domain: domain, Name: host, Type: "A", Err: fmt.Errorf("%w: no AAAA or A records", ErrNoAddress)}
	}
	return out
}

// lookupAddr resolves one address family, following CNAMEs in answers and
// chasing a chain that ends without data itself, up to maxCNAMEHops.
func (r *Resolver) lookupAddr(ctx context.Context, domain, host string, qtype uint16) (addrs []netip.Addr, secure, nx bool, err error) {
	typ := dns.TypeToString[qtype]
	name := host
	seen := map[string]bool{}
	secure = true
	for hop := 0; hop <= maxCNAMEHops; hop++ {
		fq := strings.ToLower(dns.Fqdn(name))
		if seen[fq] {
			break
		}
		seen[fq] = true
		resp, qerr := r.query(ctx, name, qtype)
		if qerr != nil {
			le := qerr.(*LookupError)
			le.Domain = domain
			return nil, false, false, le
		}
		secure = secure && resp.secure
		if resp.rcode == dns.RcodeNameError {
			return nil, secure, true, nil
		}
		rrs, end, cerr := followChain(name, qtype, resp.answer)
		if cerr != nil {
			return nil, false, false, &LookupError{Domain: domain, Name: host, Type: typ, Err: fmt.Errorf("%w: %v", ErrServerFailure, cerr)}
		}
		if len(rrs) > 0 {
			return extractAddrs(rrs), secure, false, nil
		}
		if end == fq {
			return nil, secure, false, nil // NODATA
		}
		// The resolver returned a CNAME without data: chase it ourselves.
		name = strings.TrimSuffix(end, ".")
	}
	return nil, false, false, &LookupError{Domain: domain, Name: host, Type: typ, Err: fmt.Errorf("%w: %v", ErrServerFailure, errCNAMELoop)}
}

// extractAddrs returns the addresses of A and AAAA records in rrs.
func extractAddrs(rrs []dns.RR) []netip.Addr {
	var out []netip.Addr
	for _, rr := range rrs {
		var a netip.Addr
		var ok bool
		switch v := rr.(type) {
		case *dns.A:
			a, ok = netip.AddrFromSlice(v.A.To4())
		case *dns.AAAA:
			if len(v.AAAA) == 16 {
				a, ok = netip.AddrFromSlice(v.AAAA)
			}
		}
		if ok && a.IsValid() && !containsAddr(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// LookupTLSA returns the TLSA records of _port._tcp.host (RFC 6698 §3,
// RFC 7673 §3) and whether the answer was DNSSEC-authenticated (AD bit).
// A name without TLSA records (NODATA or NXDOMAIN) is not an error: recs
// is nil and secure says whether that denial was authenticated. host is
// validated like a domain in LookupServer; IP literals are rejected.
func (r *Resolver) LookupTLSA(ctx context.Context, host string, port uint16) (recs []TLSA, secure bool, err error) {
	if _, ok := parseIPLiteral(host); ok {
		// RFC 7673 §3: TLSA owner names are host names, never addresses.
		return nil, false, &LookupError{Domain: host, Type: "TLSA", Err: fmt.Errorf("%w: %q is an IP literal", ErrInvalidName, host)}
	}
	h, err := toASCII(host)
	if err != nil {
		return nil, false, &LookupError{Domain: host, Type: "TLSA", Err: err}
	}
	if port == 0 {
		return nil, false, &LookupError{Domain: host, Type: "TLSA", Err: fmt.Errorf("%w: port 0", ErrInvalidName)}
	}
	name := "_" + strconv.Itoa(int(port)) + "._tcp." + h
	resp, err := r.query(ctx, name, dns.TypeTLSA)
	if err != nil {
		le := err.(*LookupError)
		le.Domain = host
		return nil, false, le
	}
	if resp.rcode == dns.RcodeNameError {
		return nil, resp.secure, nil
	}
	rrs, _, err := followChain(name, dns.TypeTLSA, resp.answer)
	if err != nil {
		return nil, false, &LookupError{Domain: host, Name: name, Type: "TLSA", Err: fmt.Errorf("%w: %v", ErrServerFailure, err)}
	}
	for _, rr := range rrs {
		t, ok := rr.(*dns.TLSA)
		if !ok {
			continue
		}
		data, derr := hexDecode(t.Certificate)
		if derr != nil {
			return nil, false, &LookupError{Domain: host, Name: name, Type: "TLSA", Err: fmt.Errorf("%w: bad TLSA data: %v", ErrServerFailure, derr)}
		}
		recs = append(recs, TLSA{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
	}
	return recs, resp.secure, nil
}

func hexDecode(s string) ([]byte, error) { return hex.DecodeString(s) }

// parallel calls f(0) … f(n-1), each in its own goroutine (at most
// maxParallelHosts at a time) when concurrent is set, else one after the
// other. Lookups answered from the cache run inline: starting goroutines
// would cost more than the work.
func parallel(concurrent bool, n int, f func(i int)) {
	if !concurrent || n < 2 {
		for i := range n {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelHosts)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}
