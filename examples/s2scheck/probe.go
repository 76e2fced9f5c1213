package main

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/internal/wire"
)

// nsTLS is the STARTTLS namespace (RFC 6120 §5.4).
const nsTLS = "urn:ietf:params:xml:ns:xmpp-tls"

// maxPreTLS bounds how much the peer may send before TLS: a stream header and
// features are a few hundred bytes; a peer sending more is not probed further.
const maxPreTLS = 64 << 10

// probe connects to one address of a candidate, completes TLS the way the
// candidate asks (direct TLS or STARTTLS) and verifies the certificate.
func (c *checker) probe(ctx context.Context, domain string, t dnsdisco.Target, addr netip.Addr, opts certs.VerifyOptions) attemptReport {
	hostport := net.JoinHostPort(addr.String(), strconv.Itoa(int(t.Port)))
	ar := attemptReport{Addr: hostport}
	fail := func(stage string, err error) attemptReport {
		ar.Stage, ar.Error = stage, err.Error()
		return ar
	}

	d := net.Dialer{Timeout: c.timeout}
	start := time.Now()
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return fail("tcp", err)
	}
	defer conn.Close()
	ar.TCP, ar.TCPTime, ar.stageRank = true, round(time.Since(start)), stageTCP

	// The deadline bounds STARTTLS and the handshake together.
	if err := conn.SetDeadline(time.Now().Add(2 * c.timeout)); err != nil {
		return fail("tcp", err)
	}
	cfg := &tls.Config{
		// XEP-0368 §3 and RFC 6120 §13.7.2: SNI is the XMPP domain, never
		// the SRV target.
		ServerName: domain,
		MinVersion: tls.VersionTLS12, // RFC 7590 §3.1
		// The chain and names are checked below with certs.Verify, which
		// reports why a certificate fails instead of aborting the handshake:
		// a diagnostic wants to see the certificate it rejects.
		InsecureSkipVerify: true,
	}
	if t.DirectTLS {
		cfg.NextProtos = []string{"xmpp-server"} // XEP-0368 §3
	} else if err := c.startTLS(conn, domain); err != nil {
		return fail("starttls", err)
	}

	start = time.Now()
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fail("tls", err)
	}
	ar.TLS, ar.TLSTime, ar.stageRank = true, round(time.Since(start)), stageTLS
	cs := tc.ConnectionState()
	ar.TLSVersion = tls.VersionName(cs.Version)
	ar.CipherSuite = tls.CipherSuiteName(cs.CipherSuite)
	ar.ALPN = cs.NegotiatedProtocol
	// Leave politely: close_notify, then the TCP close deferred above.
	_ = tc.Close()

	leaf := cs.PeerCertificates[0]
	cr := &certReport{
		Subject:   leaf.Subject.String(),
		Issuer:    leaf.Issuer.String(),
		NotBefore: leaf.NotBefore.UTC().Format(time.RFC3339),
		NotAfter:  leaf.NotAfter.UTC().Format(time.RFC3339),
	}
	ar.Certificate = cr
	ids, err := certs.Identities(leaf)
	for _, id := range ids {
		cr.Names = append(cr.Names, id.String())
	}
	if err != nil {
		cr.VerifyError = err.Error()
		return fail("verify", err)
	}
	// PKIX alone first, so the report shows what the certificate proves
	// without DANE; then, where DNSSEC-secure TLSA records exist, the
	// decision a DANE-aware server makes (RFC 7673 §3: DANE replaces PKIX).
	pkixOpts := opts
	pkixOpts.TLSA = nil
	res, verr := certs.Verify(domain, cs.PeerCertificates, pkixOpts)
	if verr != nil {
		cr.PKIXError = verr.Error()
	} else {
		cr.PKIXMatched = res.Matched.String()
	}
	if len(opts.TLSA) > 0 {
		res, derr := certs.Verify(domain, cs.PeerCertificates, opts)
		switch {
		case derr != nil:
			cr.DANEError, verr = derr.Error(), derr
		case res.DANE:
			cr.DANEMatched, verr = res.Matched.String(), nil
		default:
			// No usable TLSA record: PKIX decided (RFC 7672 §2.2).
			cr.DANEError = "no usable TLSA record; PKIX applies"
		}
	}
	if verr != nil {
		cr.VerifyError = verr.Error()
		return fail("verify", verr)
	}
	cr.Verified = true
	ar.stageRank = stageVerified
	return ar
}

// startTLS runs the STARTTLS exchange of RFC 6120 §5.4 up to <proceed/>,
// through the library's stream framer.
func (c *checker) startTLS(conn net.Conn, domain string) error {
	w := wire.NewWriter(conn)
	// RFC 6120 §4.7: version='1.0' so the peer sends stream features.
	if err := w.WriteHeader(wire.Header{From: c.from, To: domain, Version: "1.0"}); err != nil {
		return err
	}
	r := wire.NewReader(conn, wire.Limits{MaxStanzaBytes: maxPreTLS})
	h, err := r.ReadHeader()
	if err != nil {
		return fmt.Errorf("reading the stream header: %w", err)
	}
	if h.Version != "1.0" {
		return fmt.Errorf("peer speaks stream version %q, so it offers no STARTTLS (RFC 6120 §4.7.5)", h.Version)
	}
	features, err := next(r)
	if err != nil {
		return fmt.Errorf("reading stream features: %w", err)
	}
	if features.Name != (xml.Name{Space: wire.NSStreams, Local: "features"}) {
		return fmt.Errorf("expected <stream:features>, got <%s xmlns=%q>", features.Name.Local, features.Name.Space)
	}
	n, err := features.Node()
	if err != nil {
		return fmt.Errorf("reading stream features: %w", err)
	}
	if n.Child(nsTLS, "starttls") == nil {
		return errors.New("peer does not offer STARTTLS")
	}
	if err := w.WriteRaw([]byte("<starttls xmlns='" + nsTLS + "'/>")); err != nil {
		return err
	}
	reply, err := next(r)
	if err != nil {
		return fmt.Errorf("waiting for <proceed/>: %w", err)
	}
	switch reply.Name {
	case xml.Name{Space: nsTLS, Local: "proceed"}:
		if r.Buffered() > 0 {
			// RFC 6120 §5.4.3.3: nothing may follow <proceed/> in the clear.
			return errors.New("peer sent data after <proceed/>")
		}
		return nil
	case xml.Name{Space: nsTLS, Local: "failure"}:
		return errors.New("peer refused STARTTLS with <failure/>")
	}
	return fmt.Errorf("expected <proceed/>, got <%s xmlns=%q>", reply.Name.Local, reply.Name.Space)
}

// next reads the next element, turning a <stream:error/> or the end of the
// stream into an error that names what the peer did.
func next(r *wire.Reader) (*wire.Element, error) {
	el, err := r.Next()
	switch {
	case errors.Is(err, wire.ErrStreamEnd):
		return nil, errors.New("peer closed the stream")
	case err != nil:
		return nil, err
	case el.Name != xml.Name{Space: wire.NSStreams, Local: "error"}:
		return el, nil
	}
	n, err := el.Node()
	if err != nil {
		return nil, fmt.Errorf("peer sent a stream error we could not read: %w", err)
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
		return nil, fmt.Errorf("peer sent stream error <%s/>: %s", cond, text)
	}
	return nil, fmt.Errorf("peer sent stream error <%s/>", cond)
}
