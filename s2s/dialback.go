package s2s

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"

	"mellium.im/xmpp/stanza"
	streamerr "mellium.im/xmpp/stream"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/policy"
)

// dialbackKey computes the XEP-0185 §2 key: HMAC-SHA256 keyed with the
// lower-case hex SHA-256 of the secret, over "Receiving Server",
// "Originating Server" and "Stream ID" joined by single spaces, in
// lower-case hex.
func dialbackKey(secret []byte, receiving, originating, streamID string) string {
	h := sha256.Sum256(secret)
	var hk [64]byte
	hex.Encode(hk[:], h[:])
	m := hmac.New(sha256.New, hk[:])
	m.Write([]byte(receiving))
	m.Write([]byte{' '})
	m.Write([]byte(originating))
	m.Write([]byte{' '})
	m.Write([]byte(streamID))
	return hex.EncodeToString(m.Sum(nil))
}

// keyEqual compares keys in constant time (XEP-0220 §4.1; XEP-0185 §3).
func keyEqual(a, b string) bool {
	return len(a) > 0 && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// dbElement renders a db:result or db:verify element. typ "" is a request
// carrying key as text; cond, if set, makes it a type='error' answer with
// that stanza error condition (XEP-0220 §2.4).
func dbElement(name, from, to, id, typ, key string, cond stanza.Condition) []byte {
	b := make([]byte, 0, 256)
	b = append(b, "<db:"+name+" from='"...)
	b = wire.AppendEscaped(b, from)
	b = append(b, "' to='"...)
	b = wire.AppendEscaped(b, to)
	b = append(b, '\'')
	if id != "" {
		b = append(b, " id='"...)
		b = wire.AppendEscaped(b, id)
		b = append(b, '\'')
	}
	if typ != "" {
		b = append(b, " type='"+typ+"'"...)
	}
	switch {
	case cond != "":
		b = append(b, "><error type='cancel'><"...)
		b = append(b, string(cond)...)
		b = append(b, " xmlns='"+nsStanzas+"'/></error></db:"+name+">"...)
	case key != "":
		b = append(b, '>')
		b = wire.AppendEscaped(b, key)
		b = append(b, "</db:"+name+">"...)
	default:
		b = append(b, "/>"...)
	}
	return b
}

// dbFields reads a db:result / db:verify element's attributes and key.
type dbFields struct {
	from, to, id, typ, key string
	cond                   stanza.Condition // of a type='error' answer
}

func readDB(el *wire.Element) (dbFields, error) {
	f := dbFields{
		from: el.AttrValue("from"),
		to:   el.AttrValue("to"),
		id:   el.AttrValue("id"),
		typ:  el.AttrValue("type"),
	}
	if f.typ == "error" {
		f.cond = stanza.UndefinedCondition
		if kids, err := el.Children(); err == nil {
			for _, k := range kids {
				if k.Name.Local != "error" {
					continue
				}
				for _, c := range k.Children {
					if c.Name.Space == nsStanzas && c.Name.Local != "text" {
						f.cond = stanza.Condition(c.Name.Local)
					}
				}
			}
		}
		return f, nil
	}
	if f.typ == "" {
		t, err := el.Text()
		if err != nil {
			return f, err
		}
		f.key = t
	}
	return f, nil
}

// domainAttr normalizes a from/to attribute of a dialback element.
func domainAttr(name, v string) (string, error) {
	if v == "" {
		return "", fmt.Errorf("missing '%s'", name)
	}
	d, err := certs.NormalizeDomain(v)
	if err != nil {
		return "", fmt.Errorf("bad '%s' %q: %w", name, v, err)
	}
	return d, nil
}

// handleElement processes a non-stanza top-level element after
// negotiation: dialback requests and answers for piggybacked pairs
// (XEP-0220 §2.4 / §3 multiplexing), in both directions. It reports
// handled=false for anything else; the runtime answers that with
// unsupported-stanza-type. A non-nil error ends the stream (a stream error
// was already written).
func (st *stream) handleElement(ctx context.Context, el *wire.Element) (bool, error) {
	if el.Name.Space != wire.NSDialback {
		return false, nil
	}
	switch el.Name.Local {
	case "result":
		f, err := readDB(el)
		if err != nil {
			return true, st.fail("dialback", streamerr.BadFormat, "malformed db:result")
		}
		if f.typ == "" {
			return true, st.dialbackRequest(ctx, f)
		}
		st.dialbackAnswer(f)
		return true, nil
	case "verify":
		f, err := readDB(el)
		if err != nil {
			return true, st.fail("dialback", streamerr.BadFormat, "malformed db:verify")
		}
		if f.typ == "" {
			return true, st.answerVerify(f)
		}
		// We never send db:verify on a routing stream (verification uses a
		// dedicated connection), so this answers nothing we asked: ignore
		// it (XEP-0220 §4.1: verify only what we asked for).
		st.srv.log.Warn("s2s: ignoring unsolicited db:verify answer", "remote", st.remote, "from", f.from, "id", f.id)
		return true, nil
	}
	return false, nil
}

// dialbackAnswer delivers the peer's answer to one of our db:result
// requests. Answers for pairs we did not ask about are ignored.
func (st *stream) dialbackAnswer(f dbFields) {
	local, err1 := domainAttr("to", f.to)
	remote, err2 := domainAttr("from", f.from)
	if err1 != nil || err2 != nil {
		return
	}
	n := st.neg
	p := pair{local: local, remote: remote}
	n.mu.Lock()
	defer n.mu.Unlock()
	w, ok := n.pending[p]
	if !ok {
		st.srv.log.Warn("s2s: ignoring unsolicited db:result answer", "local", local, "remote", remote, "type", f.typ)
		return
	}
	delete(n.pending, p)
	switch f.typ {
	case "valid":
		st.authorize(p, AuthDialback, true)
		w.finish(nil)
	case "invalid":
		w.finish(ErrDialbackInvalid)
	case "error":
		w.finish(&DialbackError{Condition: f.cond})
	default:
		w.finish(fmt.Errorf("%w: unknown db:result type %q", ErrDialbackInvalid, f.typ))
	}
}

// answerVerify answers a db:verify request as the Authoritative Server
// (XEP-0220 §2.1.3): valid when the key is the one we would have generated
// for (receiving=from, originating=to, id).
func (st *stream) answerVerify(f dbFields) error {
	from, err := domainAttr("from", f.from)
	if err != nil {
		return st.fail("dialback", streamerr.ImproperAddressing, "db:verify: "+err.Error())
	}
	to, err := domainAttr("to", f.to)
	if err != nil {
		return st.fail("dialback", streamerr.ImproperAddressing, "db:verify: "+err.Error())
	}
	if !st.srv.isLocal(to) {
		// XEP-0220 §2.4: the 'to' is not a domain we serve.
		return st.write(dbElement("verify", f.to, f.from, f.id, "error", "", stanza.ItemNotFound))
	}
	typ := "invalid"
	if f.id != "" && keyEqual(f.key, dialbackKey(st.srv.secret(), from, to, f.id)) {
		typ = "valid"
	}
	return st.write(dbElement("verify", to, from, f.id, typ, "", ""))
}

// write sends raw XML and flushes.
func (st *stream) write(b []byte) error { return st.w.WriteRaw(b) }

// dialbackRequest handles the peer's db:result request to authenticate
// (from -> to) on an established stream, as the Receiving Server (XEP-0220
// §2.1.2): the verification runs in its own goroutine tracked by st.
func (st *stream) dialbackRequest(ctx context.Context, f dbFields) error {
	return st.dialbackReq(ctx, f, false)
}

// dialbackRequestSync is dialbackRequest during negotiation: the
// verification runs inline.
func (st *stream) dialbackRequestSync(ctx context.Context, f dbFields) error {
	return st.dialbackReq(ctx, f, true)
}

// dialbackReq answers what we refuse with typed errors (they do not end
// the stream, XEP-0220 §2.4), takes the XEP-0344 shortcut when the peer's
// certificate verifies for the claimed domain, else runs a db:verify round
// trip to the Authoritative Server on its own connection.
func (st *stream) dialbackReq(ctx context.Context, f dbFields, sync bool) error {
	s := st.srv
	errAnswer := func(cond stanza.Condition) error {
		s.log.Info("s2s: dialback request refused", "from", f.from, "to", f.to, "cond", cond)
		return st.write(dbElement("result", f.to, f.from, "", "error", "", cond))
	}
	remote, err := domainAttr("from", f.from)
	if err != nil {
		return errAnswer(stanza.BadRequest)
	}
	local, err := domainAttr("to", f.to)
	if err != nil {
		return errAnswer(stanza.BadRequest)
	}
	if !s.isLocal(local) {
		return errAnswer(stanza.ItemNotFound) // XEP-0220 §2.4
	}
	if s.isLocal(remote) {
		return errAnswer(stanza.NotAuthorized)
	}
	if st.dir == Outbound && !st.bidi {
		return errAnswer(stanza.NotAllowed) // requests go on streams the peer opened
	}
	set, err := st.admitDialback(ctx, remote, sync)
	if err != nil {
		var d *policy.Denial
		if errors.As(err, &d) {
			// XEP-0220 §2.4 reserves policy-violation for "TLS before
			// dialback"; a domain our policy does not authorize on this
			// stream (another partner's, or a refused one) gets
			// not-authorized: the Receiving Server's policy requires a
			// proof of authorization the Initiating Server cannot give.
			// A dialback error; the stream goes on for its other domains.
			return errAnswer(stanza.NotAuthorized)
		}
		return err // the stream's first domain was refused: it is closed
	}
	if !set.Dialback() || set.SASL == policy.Required {
		return errAnswer(stanza.NotAuthorized)
	}
	if st.tls == nil && set.TLS == policy.Required {
		return errAnswer(stanza.PolicyViolation)
	}
	p := pair{local: local, remote: remote}
	if st.canRecv(p) {
		return st.write(dbElement("result", local, remote, "", "valid", "", ""))
	}
	// XEP-0344 §2.3: the certificate already proves the peer is remote.
	if st.tls != nil {
		if _, err := certs.Verify(remote, peerChain(st.tls), s.Verify); err == nil {
			return st.dialbackResult(p, true, nil)
		}
	}
	if sync {
		ok, err := s.verifyKey(ctx, local, remote, st.id, f.key)
		return st.dialbackResult(p, ok, err)
	}
	n := st.neg
	n.mu.Lock()
	if n.closed || n.verifying[p] {
		n.mu.Unlock()
		return nil // one verification per pair at a time
	}
	if n.verifying == nil {
		n.verifying = make(map[pair]bool)
	}
	n.verifying[p] = true
	n.wg.Add(1)
	n.mu.Unlock()
	id := st.id
	go func() {
		defer n.wg.Done()
		// Bounded like any negotiation, on the Server's clock.
		vctx, cancel := context.WithCancelCause(n.ctx)
		defer cancel(nil)
		if t := s.negotiationTimer(cancel); t != nil {
			defer t.Stop()
		}
		ok, err := s.verifyKey(vctx, local, remote, id, f.key)
		n.mu.Lock()
		delete(n.verifying, p)
		n.mu.Unlock()
		if e := st.dialbackResult(p, ok, err); e != nil {
			s.log.Debug("s2s: writing dialback result failed", "err", e)
		}
	}()
	return nil
}

// admitDialback asks the policy about a domain a dialback request on st
// would authorize and returns the settings that apply to it. The first
// domain of a stream opened without 'from' (only during negotiation,
// sync) is admitted like a stream header's: a refusal closes the stream
// with policy-violation (REFERENCE §5.2 #17), a stream over the
// connection limits with resource-constraint (#47-48), and that is
// returned as the stream's error. Any other domain must belong to the same partner as
// the stream's (REFERENCE §5.3 #37) and be admitted itself; otherwise the
// *policy.Denial is returned for a dialback error.
func (st *stream) admitDialback(ctx context.Context, remote string, sync bool) (policy.Settings, error) {
	s := st.srv
	if st.rem == nil && sync {
		rem, err := s.remote(remote)
		if err != nil {
			s.refused(ctx, "inbound stream", remote, err)
			return policy.Settings{}, st.fail("policy", streamerr.PolicyViolation, err.Error())
		}
		st.admit(rem)
		// Counted against the limits now, like a stream whose header
		// named the domain (openIn): before any verification work.
		if err := s.register(st); err != nil {
			return policy.Settings{}, st.fail("stream", registerCondition(err), err.Error())
		}
		return st.set, nil
	}
	if st.rem == nil {
		return policy.Settings{}, &policy.Denial{Rule: policy.RuleNotPartner, Domain: remote}
	}
	if remote == st.rem.Domain {
		rem, err := s.remote(remote) // the current policy, not the stream's snapshot
		if err != nil {
			s.refused(ctx, "dialback", remote, err)
			return policy.Settings{}, err
		}
		return rem.Settings.Effective(), nil
	}
	set, err := s.piggybackSettings(st.rem.Domain, remote)
	if err != nil {
		s.refused(ctx, "dialback piggyback onto a stream with "+st.rem.Domain, remote, err)
	}
	return set, err
}

// piggybackSettings returns the settings for adding remote to a stream
// whose first remote domain is first, or the *policy.Denial refusing it:
// only domains of the same partner may share a stream (REFERENCE §5.3
// #37), and each must be admitted itself.
func (s *Server) piggybackSettings(first, remote string) (policy.Settings, error) {
	cur, err := s.remote(first)
	if err != nil {
		return policy.Settings{}, err
	}
	rem, err := s.remote(remote)
	if err != nil {
		return policy.Settings{}, err
	}
	if !cur.SamePartner(remote) {
		pt := cur.Partner
		if pt == "" {
			pt = cur.Domain // open federation: a domain is its own partner
		}
		return policy.Settings{}, &policy.Denial{Rule: policy.RuleOtherPartner, Domain: remote, Partner: pt}
	}
	return rem.Settings.Effective(), nil
}

// dialbackResult writes the outcome of a verification and authorizes the
// pair when valid; a verification that could not complete is answered
// with remote-server-timeout or remote-server-not-found (XEP-0220 §2.4).
func (st *stream) dialbackResult(p pair, valid bool, err error) error {
	if err != nil {
		st.srv.log.Info("s2s: dialback verification failed", "local", p.local, "remote", p.remote, "err", err)
		return st.write(dbElement("result", p.local, p.remote, "", "error", "", bounceCondition(err)))
	}
	if !valid {
		st.srv.log.Warn("s2s: dialback key invalid", "local", p.local, "remote", p.remote)
		return st.write(dbElement("result", p.local, p.remote, "", "invalid", "", ""))
	}
	st.authorize(p, AuthDialback, false)
	if err := st.write(dbElement("result", p.local, p.remote, "", "valid", "", "")); err != nil {
		return err
	}
	if st.bidi && st.dir == Inbound {
		st.reverseDialback(p)
	}
	return nil
}

// reverseDialback authenticates the reverse of p on an inbound bidi
// stream: with dialback, the direction towards the initiator is not
// implied by the peer's authentication; we send our own db:result on the
// same stream (XEP-0288 §2.2), answered through handleElement. It runs in
// a goroutine tracked by st.
func (st *stream) reverseDialback(p pair) {
	n := st.neg
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.wg.Add(1)
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		if err := st.authorizeSend(n.ctx, p.local, p.remote); err != nil {
			st.srv.log.Info("s2s: reverse dialback on bidi stream failed", "local", p.local, "remote", p.remote, "err", err)
		}
	}()
}

// verifyKey asks remote's Authoritative Server whether key is valid for
// (receiving=local, originating=remote, id) over a dedicated verification
// connection (XEP-0220 §2.1.3).
func (s *Server) verifyKey(ctx context.Context, local, remote, id, key string) (bool, error) {
	if id == "" || key == "" {
		return false, nil
	}
	v := &verifyReq{id: id, key: key}
	if _, err := s.connect(ctx, local, remote, v); err != nil {
		return false, err
	}
	return v.valid, nil
}

// verifyReq is a db:verify to send on a verification-only connection and
// its answer.
type verifyReq struct {
	id, key string
	valid   bool
}

// authorizeSend authenticates (local, remote) for sending on st, an
// outbound (or bidi) stream to the same remote server, by piggybacking a
// db:result (XEP-0220 §2.4, multiplexing); the peer may take the XEP-0344
// shortcut. It blocks until the answer arrives through handleElement, ctx
// ends, or the stream closes.
func (st *stream) authorizeSend(ctx context.Context, local, remote string) error {
	if st.canSend(pair{local: local, remote: remote}) {
		return nil
	}
	s := st.srv
	if !s.isLocal(local) {
		return negErrf(local, remote, "dialback", "%q is not one of our domains", local)
	}
	if st.dir == Inbound && !st.bidi {
		return negErrf(local, remote, "dialback", "inbound stream without bidi cannot send")
	}
	first := st.remote
	if st.rem != nil {
		first = st.rem.Domain
	}
	set, err := s.piggybackSettings(first, remote)
	if err != nil {
		return negErr(local, remote, "policy", fmt.Errorf("%w: %w", ErrRefused, err))
	}
	if !set.Dialback() {
		return negErrf(local, remote, "dialback", "dialback is disabled for %s: cannot add a pair to a stream", remote)
	}
	if st.tls == nil && set.TLS == policy.Required {
		return negErrf(local, remote, "tls", "stream has no TLS and TLS is required")
	}
	p := pair{local: local, remote: remote}
	n := st.neg
	n.mu.Lock()
	if n.closed {
		err := n.closeErr
		n.mu.Unlock()
		return negErr(local, remote, "dialback", fmt.Errorf("%w: %w", ErrStreamClosed, err))
	}
	if n.pending == nil {
		n.pending = make(map[pair]*dbWait)
	}
	w, waiting := n.pending[p]
	if !waiting {
		w = newDBWait()
		n.pending[p] = w
	}
	n.mu.Unlock()
	if !waiting {
		// Keys per XEP-0185: receiving = remote, originating = local, and
		// the stream id the receiving side chose.
		if err := st.write(dbElement("result", local, remote, "", "", dialbackKey(s.secret(), remote, local, st.id), "")); err != nil {
			n.mu.Lock()
			if n.pending[p] == w {
				delete(n.pending, p)
				w.finish(err)
			}
			n.mu.Unlock()
			return negErr(local, remote, "dialback", err)
		}
	}
	select {
	case <-w.done:
		if w.err != nil {
			return negErr(local, remote, "dialback", w.err)
		}
		return nil
	case <-ctx.Done():
		return negErr(local, remote, "dialback", context.Cause(ctx))
	}
}
