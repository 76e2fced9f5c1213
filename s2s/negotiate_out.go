package s2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
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

// negotiateOut runs the initiating side on conn until (local, remote) is
// authenticated for sending: stream header, STARTTLS (or direct TLS),
// XEP-0288 bidi, SASL EXTERNAL (XEP-0178) or dialback (XEP-0220), with
// restarts (RFC 6120 §4.3.3). With v != nil it only verifies a dialback
// key (header, TLS per settings, db:verify) and closes. conn is closed on
// error.
func (s *Server) negotiateOut(ctx context.Context, conn net.Conn, local, remote string, set policy.Settings, directTLS bool, verify certs.VerifyOptions, v *verifyReq) (st *stream, err error) {
	// ctx carries the gateway's StreamEstablishmentTimeout, set on the
	// Server's clock by the caller (the pool's attempt, or a dialback
	// verification).
	stop := deadline.Watch(ctx, conn.SetDeadline) // the end of ctx unblocks every read and write
	gw := s.gateway()
	st = &stream{
		srv: s, dir: Outbound, conn: conn, local: local, remote: remote, set: set,
		created: time.Now(), neg: newNegState(), verify: verify,
		maxBytes: s.wireLimits(gw).MaxStanzaBytes, idle: max(gw.StreamInactivityTimeout, 0),
	}
	st.r = wire.NewReader(st.io(conn), s.wireLimits(gw))
	st.w = wire.NewWriter(st.io(conn))
	neg, owned := st.neg, st // st itself is nil on error returns
	defer func() {
		// The watch ends first: neither the deadline cleared on success
		// nor the one for a timeout's stream error may be overwritten by
		// a watch firing late.
		stop()
		if err != nil {
			if ctx.Err() != nil {
				// Our header always goes out before we read; a peer too
				// slow for the establishment timeout hears why.
				owned.timeoutError(ctx, err, !directTLS || owned.tls != nil, false)
			}
			_ = conn.Close()
			neg.cancel()
			err = ctxErr(ctx, err)
			return
		}
		_ = conn.SetDeadline(time.Time{})
	}()
	if directTLS {
		if err := st.clientHandshake(ctx, conn, true); err != nil {
			return nil, err
		}
	}
	externalFailed, bidiSent := false, false
	for range maxRestarts {
		hdr, err := st.openOut()
		if err != nil {
			return nil, err
		}
		var f featureSet
		if hdr.Version == "1.0" {
			el, err := st.r.Next()
			if err != nil {
				return nil, negErr(local, remote, "stream", fmt.Errorf("reading stream features: %w", err))
			}
			if isStreamError(el) {
				return nil, negErr(local, remote, "stream", streamErrorOf(el))
			}
			if f, err = parseFeatures(el); err != nil {
				return nil, st.fail("stream", streamerr.InvalidXML, err.Error())
			}
			st.neg.features, st.neg.offered = el, f
		}
		if st.neg.auth != AuthNone {
			// Features after SASL success: negotiation is complete.
			return st, nil
		}
		if v != nil {
			// Verification-only connection: TLS per settings, no auth.
			switch {
			case st.tls == nil && set.TLS != policy.NotSupported && f.startTLS:
				if err := st.startTLSOut(ctx); err != nil {
					return nil, err
				}
				continue
			case st.tls == nil && set.TLS == policy.Required:
				_ = st.w.Close()
				return nil, negErrf(local, remote, "tls", "verification connection: peer does not offer STARTTLS and TLS is required")
			}
			return nil, st.verifyOnly(v)
		}
		act, step, err := chooseOut(f, set, st.tls != nil, st.peer != nil, f.dialback || hdr.Dialback, externalFailed)
		if err != nil {
			_ = st.w.Close()
			if step == "tls" && st.peerErr != nil {
				err = fmt.Errorf("%w: %w", err, st.peerErr)
			}
			return nil, negErr(local, remote, step, err)
		}
		if st.tls != nil && f.bidi && !bidiSent {
			// XEP-0288 §2: the initiator requests bidi before authenticating.
			if err := st.write([]byte("<bidi xmlns='" + wire.NSBidi + "'/>")); err != nil {
				return nil, negErr(local, remote, "stream", err)
			}
			bidiSent, st.bidi = true, true
		}
		switch act {
		case actStartTLS:
			if err := st.startTLSOut(ctx); err != nil {
				return nil, err
			}
			continue
		case actExternal:
			ok, err := st.externalOut()
			if err != nil {
				return nil, err
			}
			if !ok {
				externalFailed = true
				act, step, err = chooseOut(f, set, true, st.peer != nil, f.dialback || hdr.Dialback, true)
				if err != nil {
					_ = st.w.Close()
					return nil, negErr(local, remote, step, err)
				}
				break
			}
			st.neg.auth = AuthSASLExternal
			st.authorize(pair{local, remote}, AuthSASLExternal, true)
			st.bidiRecv()
			st.r.Reset(st.io(st.conn))
			continue // RFC 6120 §6.4.6: restart after SASL success
		}
		if act == actDialback {
			if err := st.dialbackOut(ctx); err != nil {
				return nil, err
			}
			st.neg.auth = AuthDialback
			st.bidiRecv()
			return st, nil
		}
	}
	return nil, st.fail("stream", streamerr.PolicyViolation, "too many stream restarts")
}

// bidiRecv: on a bidi outbound stream, the peer's certificate (verified for
// remote during TLS) authenticates the reverse direction (XEP-0288 §3).
func (st *stream) bidiRecv() {
	if st.bidi && st.peer != nil {
		st.authorize(pair{local: st.local, remote: st.remote}, st.neg.auth, false)
	}
}

// openOut sends our stream header and reads the peer's (RFC 6120 §4.7):
// the response must carry an id, and its from (if present) must be the
// remote domain.
func (st *stream) openOut() (wire.Header, error) {
	if err := st.w.WriteHeader(wire.Header{From: st.local, To: st.remote, Version: "1.0", XMLNS: wire.NSServer, Dialback: true}); err != nil {
		return wire.Header{}, negErr(st.local, st.remote, "stream", fmt.Errorf("writing stream header: %w", err))
	}
	h, err := st.r.ReadHeader()
	if err != nil {
		var se *wire.StreamError
		if errors.As(err, &se) {
			return h, st.failApp("stream", se.Cond, se.App, "bad stream header")
		}
		return h, negErr(st.local, st.remote, "stream", fmt.Errorf("reading stream header: %w", err))
	}
	if h.From != "" {
		if d, err := certs.NormalizeDomain(h.From); err != nil || d != st.remote {
			return h, st.fail("stream", streamerr.InvalidFrom, "response stream header from "+h.From+" is not "+st.remote)
		}
	}
	if h.ID == "" {
		return h, st.fail("stream", streamerr.InvalidXML, "response stream header has no id (RFC 6120 §4.7.3)")
	}
	st.id = h.ID
	return h, nil
}

// startTLSOut negotiates STARTTLS (RFC 6120 §5.4.2).
func (st *stream) startTLSOut(ctx context.Context) error {
	if err := st.write([]byte("<starttls xmlns='" + wire.NSTLS + "'/>")); err != nil {
		return negErr(st.local, st.remote, "starttls", err)
	}
	el, err := st.r.Next()
	if err != nil {
		return negErr(st.local, st.remote, "starttls", err)
	}
	switch {
	case is(el, wire.NSTLS, "proceed"):
	case is(el, wire.NSTLS, "failure"):
		return negErrf(st.local, st.remote, "starttls", "peer answered <failure/>")
	case isStreamError(el):
		return negErr(st.local, st.remote, "starttls", streamErrorOf(el))
	default:
		return st.fail("starttls", streamerr.PolicyViolation, "expected <proceed/>, got "+elemString(el.Name))
	}
	if st.r.Buffered() > 0 {
		// RFC 6120 §5.4.3.3: nothing may follow <proceed/> in the clear.
		return st.fail("starttls", streamerr.PolicyViolation, "data after <proceed/>")
	}
	return st.clientHandshake(ctx, st.conn, false)
}

// clientHandshake runs the TLS client handshake on raw and verifies the
// peer's certificate for the remote domain with certs.Verify (RFC 6120
// §13.7.2); the result goes to st.peer / st.peerErr. A certificate that
// does not verify is a failure only where nothing else can authenticate
// the peer: the decision belongs to the auth step.
func (st *stream) clientHandshake(ctx context.Context, raw net.Conn, directTLS bool) error {
	tc := tls.Client(raw, st.srv.clientTLS(st.local, st.remote, directTLS))
	if err := tc.HandshakeContext(ctx); err != nil {
		return negErr(st.local, st.remote, "tls", err)
	}
	cs := tc.ConnectionState()
	st.conn, st.tls = tc, &cs
	st.peer, st.peerErr = certs.Verify(st.remote, cs.PeerCertificates, st.verify)
	if st.peerErr != nil {
		st.srv.log.Info("s2s: peer certificate does not verify", "remote", st.remote, "err", st.peerErr)
	}
	st.r.Reset(st.io(tc))
	st.w.Reset(st.io(tc))
	return nil
}

// externalOut runs SASL EXTERNAL as the initiator (XEP-0178 §3; RFC 6120
// §6.4): authzid = our domain. It reports false when the peer answered
// <failure/>.
func (st *stream) externalOut() (bool, error) {
	authz := base64.StdEncoding.EncodeToString([]byte(st.local))
	if err := st.write([]byte("<auth xmlns='" + wire.NSSASL + "' mechanism='EXTERNAL'>" + authz + "</auth>")); err != nil {
		return false, negErr(st.local, st.remote, "sasl", err)
	}
	for range 2 {
		el, err := st.r.Next()
		if err != nil {
			return false, negErr(st.local, st.remote, "sasl", err)
		}
		switch {
		case is(el, wire.NSSASL, "success"):
			return true, nil
		case is(el, wire.NSSASL, "failure"):
			st.srv.log.Info("s2s: SASL EXTERNAL refused", "local", st.local, "remote", st.remote)
			return false, nil
		case is(el, wire.NSSASL, "challenge"):
			// RFC 6120 §6.4.2: an empty challenge is answered with an
			// empty response (we already sent the authzid).
			if err := st.write([]byte("<response xmlns='" + wire.NSSASL + "'/>")); err != nil {
				return false, negErr(st.local, st.remote, "sasl", err)
			}
		case isStreamError(el):
			return false, negErr(st.local, st.remote, "sasl", streamErrorOf(el))
		default:
			return false, st.fail("sasl", streamerr.PolicyViolation, "unexpected "+elemString(el.Name)+" during SASL")
		}
	}
	return false, st.fail("sasl", streamerr.PolicyViolation, "SASL exchange too long")
}

// dialbackOut sends db:result for (local, remote) and waits for the
// answer (XEP-0220 §2.1.1, §2.1.4). db:verify requests the peer sends us
// meanwhile (it may be our Authoritative Server role) are answered.
func (st *stream) dialbackOut(ctx context.Context) error {
	key := dialbackKey(st.srv.secret(), st.remote, st.local, st.id)
	if err := st.write(dbElement("result", st.local, st.remote, "", "", key, "")); err != nil {
		return negErr(st.local, st.remote, "dialback", err)
	}
	for range 64 {
		el, err := st.r.Next()
		if err != nil {
			return negErr(st.local, st.remote, "dialback", err)
		}
		if isStreamError(el) {
			return negErr(st.local, st.remote, "dialback", streamErrorOf(el))
		}
		if is(el, wire.NSDialback, "verify") {
			f, err := readDB(el)
			if err == nil && f.typ == "" {
				if err := st.answerVerify(f); err != nil {
					return err
				}
				continue
			}
			continue // unsolicited answer: ignored
		}
		if !is(el, wire.NSDialback, "result") {
			return st.fail("dialback", streamerr.NotAuthorized, "stanza before dialback completed")
		}
		f, err := readDB(el)
		if err != nil {
			return st.fail("dialback", streamerr.BadFormat, "malformed db:result")
		}
		from, _ := certs.NormalizeDomain(f.from)
		to, _ := certs.NormalizeDomain(f.to)
		if from != st.remote || to != st.local || f.typ == "" {
			continue // not the answer we wait for
		}
		switch f.typ {
		case "valid":
			st.authorize(pair{st.local, st.remote}, AuthDialback, true)
			return nil
		case "invalid":
			_ = st.w.Close()
			return negErr(st.local, st.remote, "dialback", ErrDialbackInvalid)
		case "error":
			_ = st.w.Close()
			return negErr(st.local, st.remote, "dialback", &DialbackError{Condition: f.cond})
		default:
			return st.fail("dialback", streamerr.BadFormat, "db:result type "+f.typ)
		}
	}
	return st.fail("dialback", streamerr.PolicyViolation, "too many elements before the dialback answer")
}

// verifyOnly sends v's db:verify as the Receiving Server and reads the
// Authoritative Server's answer (XEP-0220 §2.1.3), then closes.
func (st *stream) verifyOnly(v *verifyReq) error {
	defer func() {
		_ = st.w.Close()
		_ = st.conn.Close()
	}()
	if err := st.write(dbElement("verify", st.local, st.remote, v.id, "", v.key, "")); err != nil {
		return negErr(st.local, st.remote, "dialback", err)
	}
	for range 16 {
		el, err := st.r.Next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, wire.ErrStreamEnd) {
				return negErrf(st.local, st.remote, "dialback", "verification stream closed before the answer")
			}
			return negErr(st.local, st.remote, "dialback", err)
		}
		if isStreamError(el) {
			return negErr(st.local, st.remote, "dialback", streamErrorOf(el))
		}
		if !is(el, wire.NSDialback, "verify") {
			continue
		}
		f, err := readDB(el)
		if err != nil || f.id != v.id {
			continue // only the answer to what we asked counts
		}
		from, _ := certs.NormalizeDomain(f.from)
		to, _ := certs.NormalizeDomain(f.to)
		if from != st.remote || to != st.local {
			continue
		}
		switch f.typ {
		case "valid":
			v.valid = true
			return nil
		case "invalid":
			return nil
		case "error":
			return negErr(st.local, st.remote, "dialback", &DialbackError{Condition: f.cond})
		}
	}
	return negErrf(st.local, st.remote, "dialback", "no db:verify answer")
}
