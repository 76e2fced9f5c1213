package main

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
)

// XML namespaces of RFC 6120.
const (
	nsStreams = "http://etherx.jabber.org/streams"
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
	nsStreamE = "urn:ietf:params:xml:ns:xmpp-streams"
)

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

// startTLS runs the STARTTLS exchange of RFC 6120 §5.4 up to <proceed/>.
func (c *checker) startTLS(conn net.Conn, domain string) error {
	var from string
	if c.from != "" {
		from = " from='" + escape(c.from) + "'"
	}
	// RFC 6120 §4.7: version='1.0' so the peer sends stream features.
	header := "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='" + nsStreams +
		"' xmlns:db='jabber:server:dialback' to='" + escape(domain) + "'" + from + " version='1.0'>"
	if _, err := io.WriteString(conn, header); err != nil {
		return err
	}
	dec := xml.NewDecoder(io.LimitReader(conn, maxPreTLS))

	start, err := nextStart(dec)
	if err != nil {
		return fmt.Errorf("reading the stream header: %w", err)
	}
	if start.Name.Space != nsStreams || start.Name.Local != "stream" {
		return fmt.Errorf("peer answered with <%s xmlns=%q>, not a stream header", start.Name.Local, start.Name.Space)
	}
	for _, a := range start.Attr {
		if a.Name.Local == "version" && a.Name.Space == "" && a.Value != "1.0" {
			return fmt.Errorf("peer speaks stream version %q, so it offers no STARTTLS (RFC 6120 §4.7.5)", a.Value)
		}
	}

	features, err := nextStart(dec)
	if err != nil {
		return fmt.Errorf("reading stream features: %w", err)
	}
	if err := streamError(dec, features); err != nil {
		return err
	}
	if features.Name.Space != nsStreams || features.Name.Local != "features" {
		return fmt.Errorf("expected <stream:features>, got <%s xmlns=%q>", features.Name.Local, features.Name.Space)
	}
	var f struct {
		StartTLS *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	}
	if err := dec.DecodeElement(&f, &features); err != nil {
		return fmt.Errorf("reading stream features: %w", err)
	}
	if f.StartTLS == nil {
		return errors.New("peer does not offer STARTTLS")
	}

	if _, err := io.WriteString(conn, "<starttls xmlns='"+nsTLS+"'/>"); err != nil {
		return err
	}
	reply, err := nextStart(dec)
	if err != nil {
		return fmt.Errorf("waiting for <proceed/>: %w", err)
	}
	if err := streamError(dec, reply); err != nil {
		return err
	}
	switch {
	case reply.Name.Space == nsTLS && reply.Name.Local == "proceed":
		return nil
	case reply.Name.Space == nsTLS && reply.Name.Local == "failure":
		return errors.New("peer refused STARTTLS with <failure/>")
	}
	return fmt.Errorf("expected <proceed/>, got <%s xmlns=%q>", reply.Name.Local, reply.Name.Space)
}

// nextStart returns the next start element, skipping character data.
func nextStart(dec *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return xml.StartElement{}, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			return tok, nil
		case xml.EndElement:
			return xml.StartElement{}, errors.New("peer closed the stream")
		}
	}
}

// streamError turns a <stream:error/> into an error naming its condition.
func streamError(dec *xml.Decoder, start xml.StartElement) error {
	if start.Name.Space != nsStreams || start.Name.Local != "error" {
		return nil
	}
	var e struct {
		Inner []struct {
			XMLName xml.Name
		} `xml:",any"`
		Text string `xml:"urn:ietf:params:xml:ns:xmpp-streams text"`
	}
	if err := dec.DecodeElement(&e, &start); err != nil {
		return fmt.Errorf("peer sent a stream error we could not read: %w", err)
	}
	cond := "undefined-condition"
	for _, in := range e.Inner {
		if in.XMLName.Space == nsStreamE && in.XMLName.Local != "text" {
			cond = in.XMLName.Local
			break
		}
	}
	if e.Text != "" {
		return fmt.Errorf("peer sent stream error <%s/>: %s", cond, e.Text)
	}
	return fmt.Errorf("peer sent stream error <%s/>", cond)
}

// escape quotes a value for an XML attribute.
func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder never fails
	return b.String()
}
