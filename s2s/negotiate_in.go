package s2s

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	streamerr "mellium.im/xmpp/stream"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/internal/deadline"
	"github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/policy"
)

// acceptStream runs the receiving side on conn (a TLS handshake first when
// directTLS, XEP-0368) until the first domain pair is authenticated, or the
// peer leaves. db:verify requests that arrive before that are answered (as
// the Authoritative Server). Stream errors are written to the peer before
// the error is returned; conn is closed on error.
func (s *Server) acceptStream(ctx context.Context, conn net.Conn, directTLS bool) (st *stream, err error) {
	s.init()
	// ctx carries the gateway's StreamEstablishmentTimeout, set on the
	// Server's clock by the caller (serveConn).
	stop := deadline.Watch(ctx, conn.SetDeadline) // the end of ctx unblocks every read and write
	gw := s.gateway()
	st = &stream{
		srv: s, dir: Inbound, conn: conn, created: time.Now(), neg: newNegState(),
		maxBytes: s.wireLimits(gw).MaxStanzaBytes, idle: max(gw.StreamInactivityTimeout, 0),
	}
	st.r = wire.NewReader(st.io(conn), s.wireLimits(gw))
	st.w = wire.NewWriter(st.io(conn))
	neg, owned := st.neg, st // st itself is nil on error returns
	inHeader := false        // reading a stream header: ours is not sent yet
	defer func() {
		// The watch ends first: neither the deadline cleared on success
		// nor the one for a timeout's stream error may be overwritten by
		// a watch firing late.
		stop()
		if err != nil {
			if ctx.Err() != nil {
				owned.timeoutError(ctx, err, !directTLS || owned.tls != nil, inHeader)
			}
			_ = conn.Close()
			neg.cancel()
			neg.wg.Wait()
			s.unregister(owned)
			if owned.rt != nil {
				owned.rt.cancel()
			}
			err = ctxErr(ctx, err)
			return
		}
		_ = conn.SetDeadline(time.Time{})
	}()
	if directTLS {
		if !s.canTLS() {
			return nil, negErrf("", "", "tls", "direct TLS connection but Server.TLSConfig has no certificate")
		}
		tc := tls.Server(conn, s.inboundTLS())
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, negErr("", "", "tls", err)
		}
		st.setTLS(tc)
	}
	authDone, extOK, bidiDone := false, false, false
	for range maxRestarts {
		inHeader = true
		if err := st.openIn(ctx); err != nil {
			return nil, err
		}
		inHeader = false
		set := st.set
		if st.tls != nil && st.remote != "" && st.peer == nil && st.peerErr == nil {
			// RFC 6120 §13.7.2.2 / XEP-0178 §3: the client certificate is
			// checked against the from domain of the stream header.
			st.peer, st.peerErr = certs.Verify(st.remote, peerChain(st.tls), s.Verify)
			if st.peerErr != nil {
				s.log.Info("s2s: inbound peer certificate does not verify", "remote", st.remote, "err", st.peerErr)
			}
		}
		extOK = st.peer != nil
		if err := st.write(s.inFeatures(set, st.maxBytes, st.tls != nil, authDone, extOK, s.canTLS(), bidiDone)); err != nil {
			return nil, negErr(st.local, st.remote, "stream", err)
		}
		if authDone {
			return st, nil
		}
		restart, err := st.acceptElements(ctx, extOK, &bidiDone)
		if err != nil {
			return nil, err
		}
		switch restart {
		case restartSASL:
			authDone = true
		case restartNone:
			return st, nil
		}
	}
	return nil, st.fail("stream", streamerr.PolicyViolation, "too many stream restarts")
}

type restartKind uint8

const (
	restartNone restartKind = iota // authenticated without restart (dialback)
	restartTLS
	restartSASL
)

// setTLS records the TLS connection on st and moves the framer onto it.
func (st *stream) setTLS(tc *tls.Conn) {
	cs := tc.ConnectionState()
	st.conn, st.tls = tc, &cs
	st.peer, st.peerErr = nil, nil
	st.r.Reset(st.io(tc))
	st.w.Reset(st.io(tc))
}

// openIn reads the initiator's stream header and answers with ours (RFC
// 6120 §4.7): to must be one of our domains (host-unknown), from must not
// be (invalid-from) and must be admitted by the policy (policy-violation,
// REFERENCE §5.2 #17: before any stanza, TLS or dialback work); after a
// restart both must be unchanged.
func (st *stream) openIn(ctx context.Context) error {
	s := st.srv
	h, err := st.r.ReadHeader()
	if err != nil {
		var se *wire.StreamError
		if errors.As(err, &se) {
			st.id = wire.NewID()
			_ = st.w.WriteHeader(wire.Header{ID: st.id, Version: "1.0", XMLNS: wire.NSServer, Dialback: true})
			return st.failApp("stream", se.Cond, se.App, "bad stream header")
		}
		return negErr(st.local, st.remote, "stream", fmt.Errorf("reading stream header: %w", err))
	}
	st.id = wire.NewID() // RFC 6120 §4.7.3: a fresh id for every stream, restarts included
	to, terr := certs.NormalizeDomain(h.To)
	reply := wire.Header{ID: st.id, Version: "1.0", XMLNS: wire.NSServer, Dialback: true, To: h.From}
	if terr == nil && s.isLocal(to) {
		reply.From = to
	}
	// RFC 6120 §4.9.1.2: the response header goes out even when the stream
	// is refused, then the error.
	if err := st.w.WriteHeader(reply); err != nil {
		return negErr(st.local, st.remote, "stream", err)
	}
	if h.Version != "1.0" {
		// RFC 6120 §4.7.5: pre-1.0 peers get no features; we need them.
		return st.fail("stream", streamerr.UnsupportedVersion, "version 1.0 is required")
	}
	if h.To == "" || terr != nil || !s.isLocal(to) {
		return st.fail("stream", streamerr.HostUnknown, "'to' "+h.To+" is not served here")
	}
	from := ""
	if h.From != "" {
		f, err := certs.NormalizeDomain(h.From)
		if err != nil {
			return st.fail("stream", streamerr.InvalidFrom, "'from' is not a valid domain")
		}
		from = f
		if s.isLocal(from) {
			return st.fail("stream", streamerr.InvalidFrom, "'from' "+from+" is one of our own domains")
		}
	}
	// RFC 6120 §4.3.3, §4.7.1-2: a restart opens a new stream between the
	// same parties. The certificate, the admission and the limits were
	// for the first 'to' and 'from'.
	if st.local != "" && to != st.local {
		return st.fail("stream", streamerr.HostUnknown, "stream restart changed 'to' from "+st.local+" to "+to)
	}
	if st.local != "" && from != st.remote {
		return st.fail("stream", streamerr.InvalidFrom, "stream restart changed 'from'")
	}
	if st.tls != nil && st.tls.ServerName != "" {
		// XEP-0368 §3, RFC 6120 §13.7.2.1: the initiator names the
		// domain it wants in SNI; a stream header for another domain is
		// not the stream the TLS session was set up for.
		sni, err := certs.NormalizeDomain(st.tls.ServerName)
		if err != nil || sni != to {
			return st.fail("stream", streamerr.HostUnknown, "TLS server name "+st.tls.ServerName+" is not the stream's 'to' "+to)
		}
	}
	if st.local == "" {
		st.local, st.remote = to, from
		// Without 'from' (XEP-0220 §2.1.1) the first dialback request
		// names the domain, and its policy decides then; until then the
		// features are the most permissive ones, as the request is checked
		// against the domain's own settings (dialbackReq).
		st.set = policy.Settings{TLS: policy.Optional, SASL: policy.Optional}
		if from != "" {
			rem, err := s.remote(from)
			if err != nil {
				s.refused(ctx, "inbound stream", from, err)
				return st.fail("policy", streamerr.PolicyViolation, err.Error())
			}
			st.admit(rem)
			// Count the stream against the gateway's ConnectionLimit and
			// the partner's as soon as the peer is known, so the stream
			// over the limit is refused here, before any TLS or
			// authentication work (REFERENCE §5.5 #47-48).
			if err := s.register(st); err != nil {
				return st.fail("stream", registerCondition(err), err.Error())
			}
		}
	}
	return nil
}

// acceptElements reads negotiation elements on an inbound stream until a
// restart is needed or a pair is authenticated (restartNone).
func (st *stream) acceptElements(ctx context.Context, extOK bool, bidiDone *bool) (restartKind, error) {
	s := st.srv
	set := st.set
	tlsRequired := st.tls == nil && set.TLS == policy.Required
	saslTries := 0
	for range 1024 {
		el, err := st.r.Next()
		if err != nil {
			var se *wire.StreamError
			switch {
			case errors.As(err, &se):
				return 0, st.failApp("stream", se.Cond, se.App, "protocol violation")
			case errors.Is(err, wire.ErrStreamEnd) || errors.Is(err, io.EOF):
				_ = st.w.Close()
				return 0, negErrf(st.local, st.remote, "stream", "peer closed the stream before authenticating")
			}
			return 0, negErr(st.local, st.remote, "stream", err)
		}
		switch {
		case isStreamError(el):
			return 0, negErr(st.local, st.remote, "stream", streamErrorOf(el))
		case el.Name.Space == wire.NSServer && (el.Name.Local == "message" || el.Name.Local == "presence" || el.Name.Local == "iq"):
			// RFC 6120 §4.9.3.12: stanzas before authentication, with or
			// without TLS yet (checked before the TLS requirement: a
			// stanza is unauthenticated data whatever the transport).
			return 0, st.fail("stream", streamerr.NotAuthorized, "stanza before authentication")
		case is(el, wire.NSTLS, "starttls"):
			if st.tls != nil || !s.canTLS() || set.TLS == policy.NotSupported {
				// RFC 6120 §5.4.2.2: <failure/> then close.
				_ = st.write([]byte("<failure xmlns='" + wire.NSTLS + "'/>"))
				_ = st.w.Close()
				_ = st.conn.Close()
				return 0, negErrf(st.local, st.remote, "starttls", "STARTTLS requested but not offered")
			}
			if err := st.write([]byte("<proceed xmlns='" + wire.NSTLS + "'/>")); err != nil {
				return 0, negErr(st.local, st.remote, "starttls", err)
			}
			tc := tls.Server(st.conn, s.inboundTLS())
			if err := tc.HandshakeContext(ctx); err != nil {
				return 0, negErr(st.local, st.remote, "tls", err)
			}
			st.setTLS(tc)
			return restartTLS, nil
		case tlsRequired:
			// TLS is mandatory-to-negotiate here (RFC 6120 §5.3.1).
			return 0, st.fail("tls", streamerr.PolicyViolation, "TLS is required")
		case is(el, wire.NSSASL, "auth"):
			saslTries++
			if saslTries > 2 {
				return 0, st.fail("sasl", streamerr.PolicyViolation, "too many SASL attempts")
			}
			ok, err := st.externalIn(el, extOK && st.tls != nil && set.SASL != policy.NotSupported)
			if err != nil {
				return 0, negErr(st.local, st.remote, "sasl", err)
			}
			if ok {
				p := pair{local: st.local, remote: st.remote}
				st.neg.auth = AuthSASLExternal
				st.authorize(p, AuthSASLExternal, false)
				if st.bidi {
					// XEP-0288 §3: the initiator verified our certificate.
					st.authorize(p, AuthSASLExternal, true)
				}
				st.r.Reset(st.io(st.conn)) // RFC 6120 §6.4.6: restart
				return restartSASL, nil
			}
		case is(el, wire.NSSASL, "abort"):
			_ = st.write(saslFailure("aborted"))
		case is(el, wire.NSBidi, "bidi"):
			*bidiDone, st.bidi = true, true
		case is(el, wire.NSDialback, "result"):
			f, err := readDB(el)
			if err != nil {
				return 0, st.fail("dialback", streamerr.BadFormat, "malformed db:result")
			}
			if f.typ != "" {
				continue // an answer to nothing we asked: ignored
			}
			if err := st.dialbackRequestSync(ctx, f); err != nil {
				return 0, err
			}
			if len(st.recvPairs()) > 0 {
				st.neg.auth = AuthDialback
				if st.remote == "" {
					for p := range st.recvPairs() {
						st.remote = p.remote
					}
				}
				return restartNone, nil
			}
		case is(el, wire.NSDialback, "verify"):
			f, err := readDB(el)
			if err != nil {
				return 0, st.fail("dialback", streamerr.BadFormat, "malformed db:verify")
			}
			if f.typ != "" {
				continue // we never send db:verify on inbound streams
			}
			if err := st.answerVerify(f); err != nil {
				return 0, err
			}
		default:
			return 0, st.fail("stream", streamerr.UnsupportedStanzaType, "unexpected "+elemString(el.Name)+" during negotiation")
		}
	}
	return 0, st.fail("stream", streamerr.PolicyViolation, "too many elements during negotiation")
}

// recvPairs returns a copy of the receive pairs.
func (st *stream) recvPairs() map[pair]AuthMethod {
	st.mu.Lock()
	defer st.mu.Unlock()
	m := make(map[pair]AuthMethod, st.recv.len())
	for p, a := range st.recv.all() {
		m[p] = a
	}
	return m
}

// timeoutError tells the peer why its negotiation ended when ctx (the
// gateway's StreamEstablishmentTimeout, or the server closing) cut it and
// no stream error was sent yet: connection-timeout (RFC 6120 §4.9.3.4) or
// system-shutdown (§4.9.3.19), after our stream header if it was not
// sent (§4.9.1.1). Nothing is written unless xmlOK (the transport
// carries XML: not a direct TLS connection before its handshake), nor
// during or after a failed TLS handshake. The write gets a short deadline
// of its own: a peer that does not read cannot hold it. Inbound and
// outbound negotiations both use it.
func (st *stream) timeoutError(ctx context.Context, err error, xmlOK, needHeader bool) {
	var sent *sentError
	var ne *NegotiationError
	if st == nil || st.w == nil || !xmlOK || errors.As(err, &sent) || (errors.As(err, &ne) && ne.Step == "tls") {
		return
	}
	cond, text := streamerr.ConnectionTimeout, "stream negotiation took too long"
	if !errors.Is(context.Cause(ctx), errNegotiationTimeout) {
		if st.dir == Outbound {
			return // our own cancellation (Close, a dial given up): just close
		}
		cond, text = streamerr.SystemShutdown, "server shutting down"
	}
	_ = st.conn.SetDeadline(time.Now().Add(timeoutErrorWrite))
	if needHeader {
		st.id = wire.NewID()
		_ = st.w.WriteHeader(wire.Header{ID: st.id, Version: "1.0", XMLNS: wire.NSServer, Dialback: true})
	}
	_ = st.failApp("stream", cond, "", text)
}

// timeoutErrorWrite bounds the write of the stream error that ends a
// negotiation cut by its context.
const timeoutErrorWrite = time.Second

// inboundTLS is serverTLS built once per certificate source of
// Server.TLSConfig and shared by every inbound connection (a tls.Conn
// keeps its configuration for its life). Session tickets stay off: with
// a clone per connection no ticket could ever be used again, and sharing
// must not make sessions resumable (every stream proves its certificate
// in a full handshake).
func (s *Server) inboundTLS() *tls.Config {
	return s.tlsIn.Get(s.TLSConfig, func(*tls.Config) *tls.Config {
		cfg := s.serverTLS()
		cfg.SessionTicketsDisabled = true
		return cfg
	})
}
