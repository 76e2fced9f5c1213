package s2s

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/policy"
)

// dialStream opens an authenticated outbound stream for (local, remote):
// the policy first (a refused domain is never looked up nor dialled,
// REFERENCE §5.2 #18), then the candidates: the partner's proxy
// (Remote.ProxyFQDN, STARTTLS style, no SRV lookup, #21) or
// s.resolver.LookupServer's, each tried in order (RFC 6120 §3.2.1;
// XEP-0368 §3 for direct-TLS candidates, skipped when TLS is
// not-supported), then negotiateOut with the partner's settings. It
// returns a *NegotiationError on failure: the most informative error
// across candidates.
func (s *Server) dialStream(ctx context.Context, local, remote string) (*stream, error) {
	return s.connect(ctx, local, remote, nil)
}

// connect is dialStream; with v != nil it opens a verification-only
// connection that sends v's db:verify and records the answer.
func (s *Server) connect(ctx context.Context, local, remote string, v *verifyReq) (*stream, error) {
	s.init()
	l, err := certs.NormalizeDomain(local)
	if err != nil {
		return nil, negErr(local, remote, "stream", fmt.Errorf("local domain: %w", err))
	}
	r, err := certs.NormalizeDomain(remote)
	if err != nil {
		return nil, negErr(local, remote, "dns", fmt.Errorf("remote domain: %w", err))
	}
	local, remote = l, r
	if !s.isLocal(local) {
		return nil, negErrf(local, remote, "stream", "%q is not one of our domains", local)
	}
	if s.isLocal(remote) {
		return nil, negErrf(local, remote, "stream", "%q is one of our own domains", remote)
	}
	rem, err := s.remote(remote)
	if err != nil {
		return nil, negErr(local, remote, "policy", fmt.Errorf("%w: %w", ErrRefused, err))
	}
	set := rem.Settings.Effective()
	var targets []dnsdisco.Target
	if rem.ProxyFQDN != "" {
		targets, err = s.resolver.LookupHost(ctx, rem.ProxyFQDN, 5269)
	} else {
		targets, err = s.resolver.LookupServer(ctx, remote)
	}
	if err != nil {
		return nil, negErr(local, remote, "dns", err)
	}
	var best *NegotiationError
	keep := func(e error) {
		var ne *NegotiationError
		if !errors.As(e, &ne) {
			ne = negErr(local, remote, "connect", e)
		}
		if best == nil || stepRank(ne.Step) > stepRank(best.Step) {
			best = ne
		}
	}
	dialer := net.Dialer{Timeout: s.limits.DialTimeout}
	if s.limits.DialTimeout < 0 {
		dialer.Timeout = 0
	}
	for _, t := range targets {
		if t.DirectTLS && set.TLS == policy.NotSupported {
			continue
		}
		if t.Err != nil {
			keep(negErr(local, remote, "dns", t.Err))
			continue
		}
		for _, a := range t.Addrs {
			if ctx.Err() != nil {
				keep(negErr(local, remote, "connect", context.Cause(ctx)))
				return nil, best
			}
			addr := netip.AddrPortFrom(a, t.Port).String()
			conn, err := dialer.DialContext(ctx, "tcp", addr)
			if err != nil {
				keep(negErr(local, remote, "connect", err))
				continue
			}
			verify := s.verifyFor(ctx, t)
			if rem.ProxyFQDN != "" {
				// The operator named the proxy explicitly: its name is an
				// acceptable reference identity, like a DNSSEC-secure SRV
				// target (XEP-0344 §2.1); the partner's domain still is.
				if _, perr := netip.ParseAddr(t.Host); perr != nil {
					verify.SecureNames = append(slices.Clip(verify.SecureNames), t.Host)
				}
			}
			st, err := s.negotiateOut(ctx, conn, local, remote, set, t.DirectTLS, verify, v)
			if err == nil {
				if st != nil { // nil for a verification-only connection
					st.admit(rem)
				}
				return st, nil
			}
			s.log.Info("s2s: outbound negotiation failed", "local", local, "remote", remote, "addr", addr, "directTLS", t.DirectTLS, "err", err)
			keep(err)
			var ne *NegotiationError
			if errors.As(err, &ne) && (ne.Step == "policy") {
				return nil, best
			}
		}
	}
	if best == nil {
		best = negErrf(local, remote, "dns", "no usable candidate among %s targets", strconv.Itoa(len(targets)))
	}
	return nil, best
}

// verifyFor returns the options the certificate of target t is verified
// with: Server.Verify, plus what DNSSEC lets us trust (XEP-0344 §2.1,
// RFC 7673 §3-4). When the SRV answer was authenticated, the SRV target's
// name is an acceptable reference identity too; when the target's address
// answer was authenticated as well, its DNSSEC-authenticated TLSA records
// (_port._tcp.target) are used for DANE, which then decides alone. Records
// from an unauthenticated answer are never used, and a TLSA lookup that
// fails leaves plain PKIX in force.
func (s *Server) verifyFor(ctx context.Context, t dnsdisco.Target) certs.VerifyOptions {
	opts := s.Verify
	if !t.Secure || t.Host == "" {
		return opts
	}
	opts.SecureNames = append(slices.Clip(opts.SecureNames), t.Host)
	if !t.AddrsSecure {
		return opts
	}
	recs, secure, err := s.resolver.LookupTLSA(ctx, t.Host, t.Port)
	if err != nil || !secure {
		if err != nil {
			s.log.Debug("s2s: TLSA lookup failed; PKIX applies", "host", t.Host, "port", t.Port, "err", err)
		}
		return opts
	}
	opts.TLSA = slices.Clip(opts.TLSA) // never append into the caller's array
	for _, r := range recs {
		opts.TLSA = append(opts.TLSA, certs.TLSA(r))
	}
	return opts
}
