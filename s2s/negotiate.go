package s2s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	streamerr "mellium.im/xmpp/stream"

	"github.com/xmppfed/xmppfed/internal/tlscert"
	"github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/policy"
)

// Negotiation constants (the namespaces are internal/wire's).
const (
	alpnXMPPServer = "xmpp-server" // XEP-0368 §3
	maxRestarts    = 5             // stream restarts one negotiation may do (TLS, SASL, ...)
)

// negState is the negotiation state of one stream: the features the peer
// offered, our pending dialback requests, and the peer's dialback requests
// being verified.
type negState struct {
	// features is the last <stream:features> received on an outbound
	// stream (nil on inbound streams); the runtime reads it for XEP-0198.
	features *wire.Element
	// offered is features, parsed.
	offered featureSet
	// auth is how the first pair was authenticated.
	auth AuthMethod

	ctx    context.Context // ended by closeNeg; bounds verification goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	// pending are our db:result requests on this stream awaiting the
	// peer's answer, keyed by (our domain, their domain).
	pending map[pair]*dbWait
	// verifying are the peer's db:result requests being verified.
	verifying map[pair]bool
	closed    bool
	closeErr  error

	dbgMu sync.Mutex // for Server.DebugWriter
}

func newNegState() *negState {
	ctx, cancel := context.WithCancel(context.Background())
	return &negState{ctx: ctx, cancel: cancel}
}

// closeNeg releases negotiation state: pending dialback waits get err (or
// ErrStreamClosed), verification goroutines are cancelled and waited for.
// The runtime calls it once when the stream ends.
func (st *stream) closeNeg(err error) {
	n := st.neg
	if n == nil {
		return
	}
	if err == nil {
		err = ErrStreamClosed
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	n.closeErr = err
	for p, w := range n.pending {
		w.finish(fmt.Errorf("%w: %w", ErrStreamClosed, err))
		delete(n.pending, p)
	}
	n.mu.Unlock()
	n.cancel()
	n.wg.Wait()
}

// dbWait is one pending db:result request of ours; any number of
// goroutines may wait for its answer.
type dbWait struct {
	done chan struct{}
	err  error
}

func newDBWait() *dbWait { return &dbWait{done: make(chan struct{})} }

// finish records the answer; call once, with n.mu held.
func (w *dbWait) finish(err error) {
	w.err = err
	close(w.done)
}

// featureSet is what a <stream:features> element offers, as far as
// negotiation cares.
type featureSet struct {
	startTLS, startTLSRequired bool
	external                   bool // SASL EXTERNAL is among the mechanisms
	dialback, dialbackErrors   bool // XEP-0220 §2.5 feature and its <errors/>
	bidi                       bool // XEP-0288
	maxBytes                   int  // XEP-0478 max-bytes, 0 if absent
}

// parseFeatures reads a <stream:features> element. Unknown features are
// ignored (RFC 6120 §4.3.2).
func parseFeatures(el *wire.Element) (featureSet, error) {
	var f featureSet
	if el.Name.Space != wire.NSStreams || el.Name.Local != "features" {
		return f, fmt.Errorf("expected <stream:features>, got <%s xmlns='%s'>", el.Name.Local, el.Name.Space)
	}
	kids, err := el.Children()
	if err != nil {
		return f, fmt.Errorf("stream features: %w", err)
	}
	for _, k := range kids {
		switch {
		case k.Name.Space == wire.NSTLS && k.Name.Local == "starttls":
			f.startTLS = true
			f.startTLSRequired = k.Child(wire.NSTLS, "required") != nil
		case k.Name.Space == wire.NSSASL && k.Name.Local == "mechanisms":
			for _, m := range k.Children {
				if m.Name.Space == wire.NSSASL && m.Name.Local == "mechanism" && strings.TrimSpace(m.Text) == "EXTERNAL" {
					f.external = true
				}
			}
		case k.Name.Space == wire.NSDialbackFeature && k.Name.Local == "dialback":
			f.dialback = true
			f.dialbackErrors = k.Child(wire.NSDialbackFeature, "errors") != nil
		case k.Name.Space == wire.NSBidiFeature && k.Name.Local == "bidi":
			f.bidi = true
		case k.Name.Space == wire.NSLimits && k.Name.Local == "limits":
			if mb := k.Child(wire.NSLimits, "max-bytes"); mb != nil {
				if v, err := strconv.Atoi(strings.TrimSpace(mb.Text)); err == nil && v > 0 {
					f.maxBytes = v
				}
			}
		}
	}
	return f, nil
}

// outAction is the next step the initiating side takes after features.
type outAction uint8

const (
	actStartTLS outAction = iota + 1
	actExternal
	actDialback
)

// chooseOut decides the initiating side's next step from the peer's
// features and our settings, preferring SASL EXTERNAL over TLS, then
// dialback over TLS, then dialback over plain TCP. peerDialback reports
// that the peer supports dialback (feature or xmlns:db on its header);
// externalFailed that EXTERNAL was tried and refused; peerOK that the
// peer's certificate verified for the remote domain (without it we cannot
// know whom SASL would authenticate us to: RFC 6120 §13.7.2, so only
// dialback, which authenticates the receiving server through DNS, is
// left). On error, step names the failing step.
func chooseOut(f featureSet, set policy.Settings, tlsDone, peerOK, peerDialback, externalFailed bool) (outAction, string, error) {
	if !tlsDone {
		if set.TLS != policy.NotSupported && f.startTLS {
			return actStartTLS, "", nil
		}
		if set.TLS == policy.Required {
			// RFC 6120 §5.3.1 / RFC 7590: never send anything in the clear
			// when TLS is required.
			return 0, "tls", errors.New("peer does not offer STARTTLS and TLS is required")
		}
		if f.startTLSRequired {
			return 0, "tls", errors.New("peer requires STARTTLS and TLS is not-supported by our settings")
		}
		if set.SASL == policy.Required {
			return 0, "sasl", errors.New("SASL is required but needs TLS, which is not negotiated")
		}
		if set.Dialback() && peerDialback {
			return actDialback, "", nil
		}
		return 0, "dialback", fmt.Errorf("%w: dialback over TCP unavailable (ours: %v, peer offers: %v)", ErrNoMethod, set.Dialback(), peerDialback)
	}
	if set.SASL != policy.NotSupported && f.external && !externalFailed && peerOK {
		return actExternal, "", nil
	}
	if set.SASL == policy.Required {
		if !peerOK {
			return 0, "tls", errors.New("SASL EXTERNAL is required and the peer's certificate does not verify")
		}
		if externalFailed {
			return 0, "sasl", errors.New("SASL EXTERNAL is required and the peer refused it")
		}
		return 0, "sasl", errors.New("SASL EXTERNAL is required and the peer does not offer it")
	}
	if set.Dialback() && peerDialback {
		return actDialback, "", nil
	}
	return 0, "dialback", fmt.Errorf("%w: SASL EXTERNAL not available and dialback unavailable (ours: %v, peer offers: %v)", ErrNoMethod, set.Dialback(), peerDialback)
}

// inFeatures builds the receiving side's <stream:features> for the
// current stage. tlsDone: TLS is up; authDone: SASL succeeded (the stream
// was restarted); extOK: the peer's certificate verified for its from
// domain (so EXTERNAL may be offered, XEP-0178 §3); canTLS: we have a
// certificate.
func (s *Server) inFeatures(set policy.Settings, maxBytes int, tlsDone, authDone, extOK, canTLS, bidiDone bool) []byte {
	b := make([]byte, 0, 512)
	b = append(b, "<stream:features>"...)
	if !tlsDone && canTLS && set.TLS != policy.NotSupported {
		b = append(b, "<starttls xmlns='"+wire.NSTLS+"'>"...)
		if set.TLS == policy.Required {
			b = append(b, "<required/>"...)
		}
		b = append(b, "</starttls>"...)
	}
	// With TLS required and not yet negotiated, STARTTLS is the only
	// feature (RFC 6120 §5.3.1: mandatory-to-negotiate).
	if tlsDone || set.TLS != policy.Required {
		if !authDone {
			if tlsDone && extOK && set.SASL != policy.NotSupported {
				b = append(b, "<mechanisms xmlns='"+wire.NSSASL+"'><mechanism>EXTERNAL</mechanism></mechanisms>"...)
			}
			if set.Dialback() && set.SASL != policy.Required {
				b = append(b, "<dialback xmlns='"+wire.NSDialbackFeature+"'><errors/></dialback>"...)
			}
			if !bidiDone {
				b = append(b, "<bidi xmlns='"+wire.NSBidiFeature+"'/>"...)
			}
		}
		// XEP-0198: stream management, enabled by the initiating server
		// once it is authenticated (the read loop refuses an earlier one:
		// nothing but dialback, SASL, STARTTLS and bidi is read before).
		b = append(b, "<sm xmlns='"+wire.NSSM+"'/>"...)
		b = append(b, "<limits xmlns='"+wire.NSLimits+"'><max-bytes>"...)
		b = strconv.AppendInt(b, int64(maxBytes), 10)
		b = append(b, "</max-bytes></limits>"...)
	}
	b = append(b, "</stream:features>"...)
	return b
}

// wireLimits are the framer limits for a new stream: the gateway's stanza
// size limit and Limits.MaxDepth.
func (s *Server) wireLimits(gw policy.Gateway) wire.Limits {
	n := gw.MaxStanzaBytes
	if n <= 0 {
		n = policy.DefaultMaxStanzaBytes
	}
	return wire.Limits{MaxStanzaBytes: n, MaxDepth: s.limits.MaxDepth}
}

// tlsVersions and suites: TLS 1.2 minimum with forward-secret suites only
// (RFC 7590 §3.2, RFC 7525).
func fsSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// clientTLS is the TLS configuration for an outbound stream from local to
// remote. Verification is ours (certs.Verify after the handshake), so
// InsecureSkipVerify is set; SNI is the remote domain (XEP-0368 §3).
func (s *Server) clientTLS(local, remote string, directTLS bool) *tls.Config {
	cfg := &tls.Config{}
	if s.TLSConfig != nil {
		cfg = s.TLSConfig.Clone()
	}
	base := s.TLSConfig
	cfg.ServerName = remote
	cfg.InsecureSkipVerify = true // #nosec: verified with certs.Verify below
	cfg.VerifyConnection = nil
	cfg.VerifyPeerCertificate = nil
	cfg.GetConfigForClient = nil
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	cfg.CipherSuites = fsSuites()
	cfg.NextProtos = nil
	if directTLS {
		cfg.NextProtos = []string{alpnXMPPServer}
	}
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if c := tlscert.For(base, local); c != nil {
			return c, nil
		}
		return &tls.Certificate{}, nil // no certificate: dialback only
	}
	return cfg
}

// canTLS reports whether we have a certificate to offer TLS with.
func (s *Server) canTLS() bool {
	return s.TLSConfig != nil && (s.TLSConfig.GetCertificate != nil || len(s.TLSConfig.Certificates) > 0 || s.TLSConfig.GetConfigForClient != nil)
}

// serverTLS is the TLS configuration for inbound streams. Client
// certificates are requested, not verified by crypto/tls: the peer's
// serverAuth-only certificate would fail its clientAuth check; we verify
// with certs.Verify once the stream header names the peer.
func (s *Server) serverTLS() *tls.Config {
	cfg := s.TLSConfig.Clone()
	cfg.ClientAuth = tls.RequestClientCert
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	cfg.CipherSuites = fsSuites()
	cfg.VerifyConnection = nil
	cfg.VerifyPeerCertificate = nil
	if len(cfg.NextProtos) == 0 {
		cfg.NextProtos = []string{alpnXMPPServer}
	}
	return cfg
}

// ctxErr prefers the context's error over a deadline error it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("%w (%v)", context.Cause(ctx), err)
		}
	}
	return err
}

// peerChain returns the peer's certificates on a TLS stream.
func peerChain(cs *tls.ConnectionState) []*x509.Certificate {
	if cs == nil {
		return nil
	}
	return cs.PeerCertificates
}

// streamErrorOf turns a received <stream:error> element into a
// *PeerStreamError (RFC 6120 §4.9.2).
func streamErrorOf(el *wire.Element) error {
	pe := &PeerStreamError{Cond: streamerr.UndefinedCondition}
	kids, err := el.Children()
	if err != nil {
		return pe
	}
	for _, k := range kids {
		if k.Name.Space != wire.NSStreamErrors {
			continue
		}
		if k.Name.Local == "text" {
			pe.Text = k.Text
			continue
		}
		pe.Cond = streamerr.Error{Err: k.Name.Local}
	}
	return pe
}

// isStreamError reports whether el is <stream:error>.
func isStreamError(el *wire.Element) bool {
	return el.Name.Space == wire.NSStreams && el.Name.Local == "error"
}

// is reports whether el is {space}local.
func is(el *wire.Element, space, local string) bool {
	return el.Name.Space == space && el.Name.Local == local
}

// elemString names el for error messages.
func elemString(n xml.Name) string {
	return "<" + n.Local + " xmlns='" + n.Space + "'>"
}

// fail writes a stream error with cond and text to the peer (RFC 6120
// §4.9.1.1: then </stream:stream>), closes the connection and returns a
// *NegotiationError wrapping the condition.
func (st *stream) fail(step string, cond streamerr.Error, text string) error {
	return st.failApp(step, cond, "", text)
}

// failApp is fail with an application-specific condition element (RFC 6120
// §4.9.4, raw XML, "" for none), e.g. the wire.StreamError App of an
// oversized element (stanza-too-big).
func (st *stream) failApp(step string, cond streamerr.Error, app, text string) error {
	if st.w != nil {
		_ = st.w.WriteError(&wire.StreamError{Cond: cond, App: app}, text)
	}
	if st.conn != nil {
		lingerClose(st.conn)
	}
	return negErr(st.local, st.remote, step, &sentError{cond: cond, text: text})
}

// Bounds of lingerClose: what it reads and discards, and for how long.
const (
	lingerBytes = 256 << 10
	lingerTime  = time.Second
)

// lingerClose closes c after a stream error so that the error reaches a
// peer that is still sending (a flood, an oversized element): closing a
// TCP socket with unread input makes the kernel send a reset, which can
// destroy our last writes before the peer reads them. It half-closes
// (TLS close_notify, then TCP FIN) and reads and discards what the peer
// still sends, at most lingerBytes for at most lingerTime, before the full
// close. It must run on the goroutine that reads c.
func lingerClose(c net.Conn) {
	raw := c
	if tc, ok := c.(*tls.Conn); ok {
		if !tc.ConnectionState().HandshakeComplete {
			_ = c.Close()
			return
		}
		_ = tc.CloseWrite()
		raw = tc.NetConn()
	}
	if cw, ok := raw.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		_ = raw.SetReadDeadline(time.Now().Add(lingerTime))
		_, _ = io.CopyN(io.Discard, raw, lingerBytes)
	}
	_ = c.Close()
}

// debugIO copies the plaintext XML of a stream to Server.DebugWriter,
// each chunk prefixed with its direction. Reads and writes go to rw.
type debugIO struct {
	rw  io.ReadWriter
	dbg io.Writer
	mu  *sync.Mutex // keeps chunks of the two directions apart
}

// Read reads from the transport and copies what came in to DebugWriter.
func (d debugIO) Read(p []byte) (int, error) {
	n, err := d.rw.Read(p)
	if n > 0 {
		d.mu.Lock()
		_, _ = fmt.Fprintf(d.dbg, "IN  %s\n", p[:n])
		d.mu.Unlock()
	}
	return n, err
}

// Write copies p to DebugWriter and writes it to the transport.
func (d debugIO) Write(p []byte) (int, error) {
	d.mu.Lock()
	_, _ = fmt.Fprintf(d.dbg, "OUT %s\n", p)
	d.mu.Unlock()
	return d.rw.Write(p)
}

// io returns what the framer reads from and writes to for c: c itself,
// or c teed into DebugWriter.
func (st *stream) io(c net.Conn) io.ReadWriter {
	if st.srv.DebugWriter == nil {
		return c
	}
	return debugIO{rw: c, dbg: st.srv.DebugWriter, mu: &st.neg.dbgMu}
}

// tlsVersionName returns "TLS 1.3" etc.
func tlsVersionName(v uint16) string { return tls.VersionName(v) }
