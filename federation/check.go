package federation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/internal/deadline"
	"github.com/xmppfed/xmppfed/internal/tlscert"
	"github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
)

// maxPreTLS bounds what a probed peer may send in one element before TLS and
// in its stream features: a header and features are a few hundred bytes.
const maxPreTLS = 64 << 10

// defaultCheckStep bounds each network step of a Check (one DNS lookup,
// connect, STARTTLS and handshake, features) when Limits.DialTimeout is
// zero.
const defaultCheckStep = 10 * time.Second

// OK reports whether every stage passed (and at least one ran).
func (r *CheckReport) OK() bool { return r != nil && allOK(r.Stages) }

// allOK reports whether stages is not empty and every stage passed.
func allOK(stages []Stage) bool {
	for _, st := range stages {
		if !st.OK {
			return false
		}
	}
	return len(stages) > 0
}

// Stage returns the first stage named name (and, when target is not empty,
// concerning target), or nil.
func (r *CheckReport) Stage(name, target string) *Stage {
	for i := range r.Stages {
		if r.Stages[i].Name == name && (target == "" || r.Stages[i].Target == target) {
			return &r.Stages[i]
		}
	}
	return nil
}

// Check runs the operator's diagnostic for a remote domain: policy, DNS
// (SRV order, DNSSEC, addresses, TLSA), per candidate TCP, TLS
// (certificate names, PKIX and DANE verdicts), the stream features
// offered, and an authentication attempt with the partner's settings, plus
// the current streams and the last failure. It does not disturb
// established streams. It checks from the first of Domains.
//
// The stages are "policy" (a refused domain stops the check there), "dns",
// then for each address of each candidate "tcp", "tls", "certificate" and
// "features", then "auth": a stream opened with the partner's settings by a
// throwaway s2s.Server sharing this Server's Domains, TLSConfig, Verify,
// Resolver and Policy, which sends one XEP-0199 ping to the domain and is
// closed afterwards. A candidate without addresses is described in the dns
// stage's Detail and Targets; a direct TLS candidate is skipped when the
// partner's TLS setting is not-supported, as the server itself does.
//
// Each network step is bounded by Limits.DialTimeout (zero: 10 s); the
// whole check by ctx. The error is ctx's when it ended before the check
// completed (the report then holds the stages run); a failed stage is not
// an error.
func (s *Server) Check(ctx context.Context, domain string) (*CheckReport, error) {
	c := &checker{srv: s, step: s.checkStep()}
	if len(s.Domains) > 0 {
		c.local = s.Domains[0]
		if n, err := certs.NormalizeDomain(c.local); err == nil {
			c.local = n
		}
	}
	rep := &CheckReport{Domain: domain}
	if n, err := certs.NormalizeDomain(domain); err == nil {
		rep.Domain = n
	}
	c.run(ctx, rep)
	s.domainState(rep)
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	return rep, nil
}

// domainState fills in the real Server's current streams with the domain
// and its last failure to reach it.
func (s *Server) domainState(rep *CheckReport) {
	s.init()
	for _, si := range s.run.s2s.Stats().Streams {
		if si.Remote == rep.Domain {
			rep.Streams = append(rep.Streams, si)
		}
	}
	rep.LastFailure, rep.LastFailureAt = s.run.s2s.LastFailure(rep.Domain)
}

// checkStep is the bound of one network step of Check and SelfTest.
func (s *Server) checkStep() time.Duration {
	if s.Limits.DialTimeout > 0 {
		return s.Limits.DialTimeout
	}
	return defaultCheckStep
}

// resolver returns Server.Resolver or a zero dnsdisco.Resolver.
func (s *Server) checkResolver() *dnsdisco.Resolver {
	if s.Resolver != nil {
		return s.Resolver
	}
	return new(dnsdisco.Resolver)
}

// checker runs one Check.
type checker struct {
	srv   *Server
	local string // our domain (A-label), "" when the Server has none
	step  time.Duration
}

// stage runs f as the stage name/target, timing it, and appends it.
func stage(rep *[]Stage, name, target string, f func(st *Stage)) *Stage {
	st := Stage{Name: name, Target: target}
	start := time.Now()
	f(&st)
	st.Duration = time.Since(start)
	st.OK = st.Err == nil
	*rep = append(*rep, st)
	return &(*rep)[len(*rep)-1]
}

func (c *checker) run(ctx context.Context, rep *CheckReport) {
	rem := c.policyStage(rep)
	if rem == nil {
		return
	}
	set := rem.Settings.Effective()
	targets, ok := c.dnsStage(ctx, rep, rem)
	if !ok {
		return // no candidate has an address: nothing to connect to
	}
	for _, t := range targets {
		if t.Err != nil || (t.DirectTLS && set.TLS == policy.NotSupported) {
			continue
		}
		opts := c.verifyOptions(ctx, t, rem)
		for _, a := range t.Addrs {
			if ctx.Err() != nil {
				return
			}
			c.probe(ctx, rep, rep.Domain, t, a, set, opts)
		}
	}
	if ctx.Err() != nil {
		return
	}
	stage(&rep.Stages, "auth", rep.Domain, func(st *Stage) {
		c.authStage(ctx, st, rep.Domain)
	})
}

// policyStage asks the policy about the domain (REFERENCE §5.2); nil means
// refused, recorded in rep.
func (c *checker) policyStage(rep *CheckReport) *policy.Remote {
	var rem *policy.Remote
	stage(&rep.Stages, "policy", rep.Domain, func(st *Stage) {
		if c.srv.Policy == nil {
			st.Err = errors.New("federation: the Server has no Policy, so every remote domain is refused")
			return
		}
		r, err := c.srv.Policy.Remote(rep.Domain)
		if err != nil {
			st.Err = err
			var d *policy.Denial
			if errors.As(err, &d) {
				st.Detail = "refused by rule " + d.Rule.String() + "; senders get " + string(d.StanzaError().Condition)
			}
			return
		}
		rem = r
		st.Detail = describeRemote(r)
	})
	if rem == nil {
		rep.Refused = rep.Stages[len(rep.Stages)-1].Err
		return nil
	}
	rep.Partner = rem
	return rem
}

// describeRemote words the policy's view of a domain for an operator.
func describeRemote(r *policy.Remote) string {
	var b strings.Builder
	if r.Partner == "" {
		b.WriteString("admitted by open federation")
	} else {
		fmt.Fprintf(&b, "partner %s", r.Partner)
	}
	set := r.Settings
	db := "on"
	if !set.Dialback() {
		db = "off"
	}
	fmt.Fprintf(&b, ", type %s, TLS %s, SASL %s, dialback %s, expected methods: %s", r.Type, set.TLS, set.SASL, db, set.ExpectedMethods())
	if r.ProxyFQDN != "" {
		fmt.Fprintf(&b, ", proxy %s", r.ProxyFQDN)
	}
	return b.String()
}

// dnsStage finds the candidates: the partner's proxy (no SRV lookup,
// REFERENCE §5.2 #21) or the SRV records (RFC 6120 §3.2, XEP-0368).
func (c *checker) dnsStage(ctx context.Context, rep *CheckReport, rem *policy.Remote) ([]dnsdisco.Target, bool) {
	res := c.srv.checkResolver()
	target := rep.Domain
	if rem.ProxyFQDN != "" {
		target = rem.ProxyFQDN
	}
	var targets []dnsdisco.Target
	st := stage(&rep.Stages, "dns", target, func(st *Stage) {
		qctx, cancel := context.WithTimeout(ctx, 2*c.step)
		defer cancel()
		var err error
		if rem.ProxyFQDN != "" {
			targets, err = res.LookupHost(qctx, rem.ProxyFQDN, 5269)
		} else {
			targets, err = res.LookupServer(qctx, rep.Domain)
		}
		st.Detail = describeTargets(targets, rem.ProxyFQDN != "")
		if err != nil {
			st.Err = err
			if cond := lookupCondition(err); cond != "" {
				st.Detail = strings.TrimPrefix(st.Detail+"; ", "; ") + "a server bounces stanzas to it with " + string(cond)
			}
		}
	})
	rep.Targets = targets
	return targets, st.OK
}

// lookupCondition is the stanza error condition a server bounces with after
// err (RFC 6120 §8.3.3.13, §8.3.3.14).
func lookupCondition(err error) stanza.Condition {
	var le *dnsdisco.LookupError
	if !errors.As(err, &le) {
		return ""
	}
	switch {
	case le.NotFound():
		return stanza.RemoteServerNotFound
	case le.Temporary():
		return stanza.RemoteServerTimeout
	}
	return ""
}

// describeTargets lists the candidates in connection order.
func describeTargets(ts []dnsdisco.Target, proxy bool) string {
	var parts []string
	for i, t := range ts {
		mode := "STARTTLS"
		if t.DirectTLS {
			mode = "direct TLS"
		}
		p := fmt.Sprintf("%d. %s %s", i+1, net.JoinHostPort(t.Host, strconv.Itoa(int(t.Port))), mode)
		if !proxy {
			p += fmt.Sprintf(" priority %d weight %d DNSSEC %s", t.Priority, t.Weight, yesNo(t.Secure))
		}
		if t.Err != nil {
			p += " addresses: none (" + t.Err.Error() + ")"
		} else {
			addrs := make([]string, len(t.Addrs))
			for j, a := range t.Addrs {
				addrs[j] = a.String()
			}
			p += fmt.Sprintf(" addresses: %s DNSSEC %s", strings.Join(addrs, ", "), yesNo(t.AddrsSecure))
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "no candidates"
	}
	return strings.Join(parts, "; ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// verifyOptions are what the certificate of t is verified with, as the
// s2s pool does: Server.Verify; when the SRV answer was DNSSEC-secure the
// target name is a reference identity too (XEP-0344 §2.1, RFC 7673 §4);
// when the addresses were as well, DNSSEC-secure TLSA records decide (RFC
// 7673 §3). A partner's proxy name is a reference identity.
func (c *checker) verifyOptions(ctx context.Context, t dnsdisco.Target, rem *policy.Remote) certs.VerifyOptions {
	opts := c.srv.Verify
	opts.SecureNames = append([]string(nil), opts.SecureNames...)
	opts.TLSA = append([]certs.TLSA(nil), opts.TLSA...)
	if rem.ProxyFQDN != "" {
		if _, err := netip.ParseAddr(t.Host); err != nil {
			opts.SecureNames = append(opts.SecureNames, t.Host)
		}
	}
	if !t.Secure || t.Host == "" {
		return opts
	}
	opts.SecureNames = append(opts.SecureNames, t.Host)
	if !t.AddrsSecure {
		return opts
	}
	qctx, cancel := context.WithTimeout(ctx, 2*c.step)
	defer cancel()
	recs, secure, err := c.srv.checkResolver().LookupTLSA(qctx, t.Host, t.Port)
	if err != nil || !secure {
		return opts
	}
	for _, r := range recs {
		opts.TLSA = append(opts.TLSA, certs.TLSA(r))
	}
	return opts
}

// probe connects to one address of candidate t and runs the tcp, tls,
// certificate and features stages on it.
func (c *checker) probe(ctx context.Context, rep *CheckReport, domain string, t dnsdisco.Target, addr netip.Addr, set policy.Settings, opts certs.VerifyOptions) {
	hostport := netip.AddrPortFrom(addr, t.Port).String()
	var conn net.Conn
	tcp := stage(&rep.Stages, "tcp", hostport, func(st *Stage) {
		d := net.Dialer{Timeout: c.step}
		var err error
		conn, err = d.DialContext(ctx, "tcp", hostport)
		if err != nil {
			st.Err = err
			return
		}
		st.Detail = "connected to " + t.Host
	})
	if !tcp.OK {
		return
	}
	defer conn.Close()
	// One deadline bounds STARTTLS, the handshake and the features; the end
	// of ctx unblocks them at once.
	_ = conn.SetDeadline(time.Now().Add(3 * c.step))
	defer deadline.Watch(ctx, conn.SetDeadline)()

	p := &prober{c: c, domain: domain, conn: conn}
	var features *wire.Node
	var hdr wire.Header
	tlsStage := stage(&rep.Stages, "tls", hostport, func(st *Stage) {
		features, hdr, st.Detail, st.Err = p.tls(ctx, t.DirectTLS, set)
	})
	if !tlsStage.OK {
		return
	}
	if p.tc != nil {
		stage(&rep.Stages, "certificate", hostport, func(st *Stage) {
			st.Detail, st.Err = verifyPeer(domain, p.tc.ConnectionState().PeerCertificates, opts)
		})
		stage(&rep.Stages, "features", hostport, func(st *Stage) {
			features, hdr, st.Err = p.open()
			if st.Err == nil {
				st.Detail, st.Err = judgeFeatures(features, hdr, set, true)
			}
		})
	} else {
		stage(&rep.Stages, "features", hostport, func(st *Stage) {
			st.Detail, st.Err = judgeFeatures(features, hdr, set, false)
		})
	}
	p.close()
}

// prober speaks the start of an s2s stream on one connection.
type prober struct {
	c      *checker
	domain string
	conn   net.Conn
	tc     *tls.Conn // after TLS
	w      *wire.Writer
	r      *wire.Reader
}

// tls completes TLS the way the candidate asks: direct TLS (XEP-0368) or
// STARTTLS (RFC 6120 §5.4). Without TLS (the peer does not offer it and the
// partner's settings allow that, or TLS is not-supported) it returns the
// features of the clear stream and a nil p.tc.
func (p *prober) tls(ctx context.Context, direct bool, set policy.Settings) (*wire.Node, wire.Header, string, error) {
	if !direct {
		features, hdr, err := p.header(p.conn)
		if err != nil {
			return nil, hdr, "", err
		}
		offered := features.Child(wire.NSTLS, "starttls") != nil
		switch {
		case set.TLS == policy.NotSupported:
			return features, hdr, "not used: TLS is not-supported for this partner", nil
		case !offered && set.TLS == policy.Required:
			return nil, hdr, "", errors.New("the peer does not offer STARTTLS and this partner's TLS setting is required")
		case !offered:
			return features, hdr, "not offered by the peer; TLS is optional for this partner, so the stream goes on without it", nil
		}
		if err := p.startTLS(); err != nil {
			return nil, hdr, "", err
		}
	}
	cfg := &tls.Config{
		// XEP-0368 §3 and RFC 6120 §13.7.2: SNI is the XMPP domain, never
		// the SRV target.
		ServerName: p.domain,
		MinVersion: tls.VersionTLS12, // RFC 7590 §3.1
		// The chain and names are checked with certs.Verify in the
		// certificate stage, which says why a certificate fails instead of
		// aborting the handshake: a diagnostic shows what it rejects.
		InsecureSkipVerify: true, // #nosec: verified with certs.Verify
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if c := tlscert.For(p.c.srv.TLSConfig, p.c.local); c != nil {
				return c, nil
			}
			return &tls.Certificate{}, nil
		},
	}
	if direct {
		cfg.NextProtos = []string{"xmpp-server"} // XEP-0368 §3
	}
	tc := tls.Client(p.conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, wire.Header{}, "", err
	}
	p.tc = tc
	cs := tc.ConnectionState()
	mode := "STARTTLS"
	if direct {
		mode = "direct TLS"
	}
	alpn := cs.NegotiatedProtocol
	if alpn == "" {
		alpn = "none"
	}
	return nil, wire.Header{}, fmt.Sprintf("%s, %s %s, ALPN %s", mode, tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite), alpn), nil
}

// header sends our stream header on rw and reads the peer's header and
// stream features (RFC 6120 §4.3).
func (p *prober) header(rw net.Conn) (*wire.Node, wire.Header, error) {
	p.w = wire.NewWriter(rw)
	// RFC 6120 §4.7: version='1.0' so the peer sends stream features.
	if err := p.w.WriteHeader(wire.Header{From: p.c.local, To: p.domain, Version: "1.0"}); err != nil {
		return nil, wire.Header{}, err
	}
	p.r = wire.NewReader(rw, wire.Limits{MaxStanzaBytes: maxPreTLS})
	h, err := p.r.ReadHeader()
	if err != nil {
		return nil, h, fmt.Errorf("reading the stream header: %w", err)
	}
	if h.Version != "1.0" {
		return nil, h, fmt.Errorf("the peer speaks stream version %q, so it sends no stream features (RFC 6120 §4.7.5)", h.Version)
	}
	el, err := next(p.r)
	if err != nil {
		return nil, h, fmt.Errorf("reading stream features: %w", err)
	}
	if el.Name != (xml.Name{Space: wire.NSStreams, Local: "features"}) {
		return nil, h, fmt.Errorf("expected <stream:features>, got <%s xmlns=%q>", el.Name.Local, el.Name.Space)
	}
	n, err := el.Node()
	if err != nil {
		return nil, h, fmt.Errorf("reading stream features: %w", err)
	}
	return n, h, nil
}

// startTLS asks for TLS and waits for <proceed/> (RFC 6120 §5.4.2).
func (p *prober) startTLS() error {
	if err := p.w.WriteRaw([]byte("<starttls xmlns='" + wire.NSTLS + "'/>")); err != nil {
		return err
	}
	reply, err := next(p.r)
	if err != nil {
		return fmt.Errorf("waiting for <proceed/>: %w", err)
	}
	switch reply.Name {
	case xml.Name{Space: wire.NSTLS, Local: "proceed"}:
		if p.r.Buffered() > 0 {
			// RFC 6120 §5.4.3.3: nothing may follow <proceed/> in the clear.
			return errors.New("the peer sent data after <proceed/>")
		}
		return nil
	case xml.Name{Space: wire.NSTLS, Local: "failure"}:
		return errors.New("the peer refused STARTTLS with <failure/>")
	}
	return fmt.Errorf("expected <proceed/>, got <%s xmlns=%q>", reply.Name.Local, reply.Name.Space)
}

// open starts the stream over TLS (the restart of RFC 6120 §5.4.3.3, or the
// first stream of direct TLS) and returns the features offered there.
func (p *prober) open() (*wire.Node, wire.Header, error) {
	return p.header(p.tc)
}

// close leaves politely: </stream:stream>, then close_notify.
func (p *prober) close() {
	if p.w != nil {
		_ = p.w.Close()
	}
	if p.tc != nil {
		_ = p.tc.Close()
	}
}

// next reads the next element, turning a <stream:error/> or the end of the
// stream into an error that names what the peer did.
func next(r *wire.Reader) (*wire.Element, error) {
	el, err := r.Next()
	switch {
	case errors.Is(err, wire.ErrStreamEnd):
		return nil, errors.New("the peer closed the stream")
	case err != nil:
		return nil, err
	case el.Name != xml.Name{Space: wire.NSStreams, Local: "error"}:
		return el, nil
	}
	n, err := el.Node()
	if err != nil {
		return nil, fmt.Errorf("the peer sent a stream error we could not read: %w", err)
	}
	cond, text := "undefined-condition", ""
	for _, k := range n.Children {
		switch {
		case k.Name.Space != wire.NSStreamErrors:
		case k.Name.Local == "text":
			text = k.Text
		default:
			cond = k.Name.Local
		}
	}
	if text != "" {
		return nil, fmt.Errorf("the peer sent stream error <%s/>: %s", cond, text)
	}
	return nil, fmt.Errorf("the peer sent stream error <%s/>", cond)
}

// verifyPeer checks the peer's chain for domain (RFC 6120 §13.7.2, RFC
// 7673 for DANE) and describes the names it presents. The error is certs'
// (*certs.IdentityError lists the names presented).
func verifyPeer(domain string, chain []*x509.Certificate, opts certs.VerifyOptions) (string, error) {
	if len(chain) == 0 {
		return "", certs.ErrNoCertificate
	}
	leaf := chain[0]
	var b strings.Builder
	fmt.Fprintf(&b, "subject %q, issuer %q, valid %s to %s", leaf.Subject.String(), leaf.Issuer.String(),
		leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	ids, err := certs.Identities(leaf)
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = id.String()
	}
	if len(names) == 0 {
		names = []string{"none"}
	}
	fmt.Fprintf(&b, "; names: %s", strings.Join(names, ", "))
	if err != nil {
		return b.String(), err
	}
	// PKIX alone first, so the report shows what the certificate proves
	// without DANE; then, with DNSSEC-secure TLSA records, the decision a
	// DANE-aware server makes (RFC 7673 §3: DANE replaces PKIX).
	pkix := opts
	pkix.TLSA = nil
	res, verr := certs.Verify(domain, chain, pkix)
	if verr != nil {
		fmt.Fprintf(&b, "; PKIX: NOT valid: %v", verr)
	} else {
		fmt.Fprintf(&b, "; PKIX: valid, matched %s", res.Matched)
	}
	if len(opts.TLSA) > 0 {
		res, derr := certs.Verify(domain, chain, opts)
		switch {
		case derr != nil:
			fmt.Fprintf(&b, "; DANE: %v", derr)
			verr = derr
		case res.DANE:
			fmt.Fprintf(&b, "; DANE: matched %s", res.Matched)
			verr = nil
		default:
			b.WriteString("; DANE: no usable TLSA record, PKIX applies")
		}
	}
	if verr != nil {
		return b.String(), verr
	}
	fmt.Fprintf(&b, "; verifies for %s", domain)
	return b.String(), nil
}

// judgeFeatures lists what the peer offers and checks that it leaves a
// method the partner's settings accept (REFERENCE §3.1, best first: SASL
// EXTERNAL over TLS, dialback over TLS, dialback over TCP).
func judgeFeatures(f *wire.Node, hdr wire.Header, set policy.Settings, overTLS bool) (string, error) {
	if f == nil {
		return "", errors.New("no stream features")
	}
	external := false
	if m := f.Child(wire.NSSASL, "mechanisms"); m != nil {
		for _, k := range m.Children {
			if k.Name == (xml.Name{Space: wire.NSSASL, Local: "mechanism"}) && strings.TrimSpace(k.Text) == "EXTERNAL" {
				external = true
			}
		}
	}
	// XEP-0220 §2.1: the db namespace on the header announces dialback too.
	dialback := f.Child(wire.NSDialbackFeature, "dialback") != nil || hdr.Dialback
	var offered []string
	if external {
		offered = append(offered, "SASL EXTERNAL")
	}
	if dialback {
		offered = append(offered, "dialback")
	}
	if f.Child(wire.NSBidiFeature, "bidi") != nil {
		offered = append(offered, "bidi (XEP-0288)")
	}
	if f.Child(wire.NSSM, "sm") != nil {
		offered = append(offered, "stream management (XEP-0198)")
	}
	if f.Child(wire.NSTLS, "starttls") != nil {
		offered = append(offered, "STARTTLS")
	}
	if len(offered) == 0 {
		offered = []string{"nothing"}
	}
	detail := "offered: " + strings.Join(offered, ", ")
	expected := set.ExpectedMethods()
	var usable policy.Method
	switch {
	case overTLS && external && expected.Has(policy.SASLOverTLS):
		usable = policy.SASLOverTLS
	case overTLS && dialback && expected.Has(policy.TLSDialback):
		usable = policy.TLSDialback
	case !overTLS && dialback && expected.Has(policy.TCPDialback):
		usable = policy.TCPDialback
	}
	if usable == 0 {
		return detail, fmt.Errorf("%w: the partner's settings accept %s", s2s.ErrNoMethod, expected)
	}
	return detail + "; usable: " + usable.String(), nil
}

// authStage opens a stream to domain through a throwaway s2s.Server with
// our configuration and the partner's settings, sends one XEP-0199 ping and
// reports the negotiated method and the answer. The real Server's streams
// are not touched.
func (c *checker) authStage(ctx context.Context, st *Stage, domain string) {
	if c.local == "" {
		st.Err = errors.New("federation: the Server has no Domains to authenticate as")
		return
	}
	res, err := c.srv.probeStream(ctx, c.local, domain, 3*c.step)
	st.Detail = res.detail()
	st.Err = err
}

// probeResult is what a throwaway stream attempt found.
type probeResult struct {
	stream *s2s.StreamInfo
	reply  *s2s.Stanza // the ping's answer, if it came on the stream
	waited time.Duration
}

func (r probeResult) detail() string {
	if r.stream == nil {
		return ""
	}
	si := r.stream
	tlsv := si.TLSVersion
	if tlsv == "" {
		tlsv = "no TLS"
	}
	d := fmt.Sprintf("authenticated with %s over %s", si.Auth, tlsv)
	if si.Identity != "" {
		d += ", peer identity " + si.Identity
	}
	if si.Bidi {
		d += ", bidi"
	}
	switch {
	case r.reply != nil && r.reply.Type == "result":
		d += "; ping answered"
	case r.reply != nil:
		d += "; ping answered with an error: " + string(replyCondition(r.reply))
	default:
		d += fmt.Sprintf("; no ping answer within %s", r.waited)
	}
	return d
}

// probeStream opens a stream from local to remote through a throwaway
// s2s.Server sharing this Server's configuration, sends a ping and waits
// (at most wait) for the stream and the answer; it closes the throwaway
// server before returning.
func (s *Server) probeStream(ctx context.Context, local, remote string, wait time.Duration) (probeResult, error) {
	var res probeResult
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	id := wire.NewID()
	events := make(chan s2s.StreamEvent, 8)
	replies := make(chan *s2s.Stanza, 1)
	bounced := make(chan stanza.Error, 1)
	tmp := &s2s.Server{
		Domains:   s.Domains,
		TLSConfig: s.TLSConfig,
		Verify:    s.Verify,
		Resolver:  s.Resolver,
		Policy:    s.Policy,
		Limits:    s2s.Limits{MaxDepth: s.Limits.MaxDepth, PingInterval: -1, QueueSize: 4, DialTimeout: s.checkStep()},
		Logger:    s.Logger,
		Handler: s2s.HandlerFunc(func(_ context.Context, in *s2s.Stanza) error {
			if in.Kind == "iq" && in.ID == id {
				select {
				case replies <- in:
				default:
				}
				return nil
			}
			// Nothing else is for us: RFC 6120 §8.4.
			return stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
		}),
		Bounce: func(_ context.Context, _ *s2s.Stanza, e stanza.Error) {
			select {
			case bounced <- e:
			default:
			}
		},
		StreamEvent: func(ev s2s.StreamEvent) {
			if ev.Direction != s2s.Outbound || ev.Remote != remote || ev.Type == s2s.StreamClosed {
				return
			}
			select {
			case events <- ev:
			default:
			}
		},
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), s.checkStep())
		_ = tmp.Shutdown(sctx)
		scancel()
	}()
	from, err := jid.Parse(local)
	if err != nil {
		return res, err
	}
	to, err := jid.Parse(remote)
	if err != nil {
		return res, err
	}
	ping, err := s2s.ParseStanza(pingIQ(from, to, id))
	if err != nil {
		return res, err
	}
	// The real Server takes the answer too, should it come its way.
	s.init()
	real := &pendingIQ{to: to, reply: make(chan iqAnswer, 1)}
	s.run.mu.Lock()
	s.run.pending[id] = real
	s.run.mu.Unlock()
	defer func() {
		s.run.mu.Lock()
		delete(s.run.pending, id)
		s.run.mu.Unlock()
	}()
	if err := tmp.Send(ctx, ping); err != nil {
		return res, err
	}
	for res.stream == nil {
		select {
		case ev := <-events:
			if ev.Type == s2s.StreamFailed {
				return res, ev.Err
			}
			for _, si := range tmp.Stats().Streams {
				if si.Direction == s2s.Outbound && si.Remote == remote {
					res.stream = &si
					break
				}
			}
			if res.stream == nil {
				res.stream = &s2s.StreamInfo{Direction: s2s.Outbound, Local: local, Remote: remote, Auth: ev.Auth}
			}
		case e := <-bounced:
			if lf, _ := tmp.LastFailure(remote); lf != nil {
				return res, lf
			}
			return res, e
		case <-ctx.Done():
			if lf, _ := tmp.LastFailure(remote); lf != nil {
				return res, lf
			}
			return res, fmt.Errorf("no stream within %s: %w", wait, context.Cause(ctx))
		}
	}
	start := time.Now()
	// The answer is waited for a bounded time, and taken where it comes:
	// on this stream (XEP-0288 bidi), or on a stream of the real Server
	// (the peer routes it over any stream to our domain, or opens one to
	// our listener). Not getting it is not an authentication failure.
	answer := time.NewTimer(s.checkStep())
	defer answer.Stop()
	select {
	case r := <-replies:
		res.reply = r
	case a := <-real.reply:
		res.reply = a.st
	case <-answer.C:
	case <-ctx.Done():
	}
	res.waited = time.Since(start).Round(time.Millisecond)
	return res, nil
}

// pingIQ is an XEP-0199 §4 ping from from to to, built with encoding/xml so
// every attribute is escaped.
func pingIQ(from, to jid.JID, id string) []byte {
	var b strings.Builder
	e := xml.NewEncoder(&b)
	start := xml.StartElement{
		Name: xml.Name{Space: wire.NSServer, Local: "iq"},
		Attr: []xml.Attr{
			{Name: xml.Name{Local: "type"}, Value: "get"},
			{Name: xml.Name{Local: "id"}, Value: id},
			{Name: xml.Name{Local: "from"}, Value: from.String()},
			{Name: xml.Name{Local: "to"}, Value: to.String()},
		},
	}
	ping := xml.StartElement{Name: xml.Name{Space: wire.NSPing, Local: "ping"}}
	_ = e.EncodeToken(start)
	_ = e.EncodeToken(ping)
	_ = e.EncodeToken(ping.End())
	_ = e.EncodeToken(start.End())
	_ = e.Flush()
	return []byte(b.String())
}

// replyCondition returns the defined condition of an error reply (RFC 6120
// §8.3.2), or undefined-condition.
func replyCondition(st *s2s.Stanza) stanza.Condition {
	d := xml.NewTokenDecoder(st.TokenReader())
	var v struct {
		Error stanza.Error `xml:"error"`
	}
	if err := d.Decode(&v); err != nil || v.Error.Condition == "" {
		return stanza.UndefinedCondition
	}
	return v.Error.Condition
}
