package federation

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"log/slog"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/s2s"
	"github.com/xmppfed/xmppfed/translate"
)

// Namespaces the Server answers for its own domains.
const (
	discoInfoNS  = "http://jabber.org/protocol/disco#info"  // XEP-0030
	discoItemsNS = "http://jabber.org/protocol/disco#items" // XEP-0030
	versionNS    = "jabber:iq:version"                      // XEP-0092
)

// Stanza errors the domain answers with (functions, not package
// variables: a stanza.Error holds a map and could be changed by anyone).
func errServiceUnavailable() stanza.Error {
	return stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
}
func errBadRequest() stanza.Error {
	return stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
}
func errNotImplemented() stanza.Error {
	return stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented}
}
func errItemNotFound() stanza.Error {
	return stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound}
}

// handle is the s2s.Server's Handler: every stanza an authenticated remote
// domain sends to one of our domains (s2s has checked its addressing, the
// partner's rate and the local user's access).
func (s *Server) handle(ctx context.Context, st *s2s.Stanza) error {
	if m := s.Metrics; m != nil {
		m.Stanza("in", s.partnerOf(st.SenderDomain()))
	}
	if st.To.Localpart() == "" {
		return s.handleDomain(ctx, st)
	}
	return s.handleUser(ctx, st)
}

// handleUser handles a stanza to a local user.
func (s *Server) handleUser(ctx context.Context, st *s2s.Stanza) error {
	r := &s.run
	if st.Kind == "iq" && (st.Type == "result" || st.Type == "error") {
		// RFC 6120 §8.2.3: a result or error answers a request; ours are
		// the only iq requests a local user sends (sendIQ).
		if !s.resolvePending(st) {
			r.log.LogAttrs(ctx, slog.LevelDebug, "federation: iq answer to no request of ours dropped",
				slog.String("from", st.From.String()), slog.String("to", st.To.String()), slog.String("id", st.ID))
		}
		return nil
	}
	if st.Type == "error" {
		// A remote server (or user) refused something we sent: the host
		// learns it through Backend.Bounce. The Translator ignores error
		// stanzas (RFC 6120 §8.3.1: never answered).
		s.remoteError(ctx, st)
		return nil
	}
	// s2s read and checked the stanza (internal/wire, or ParseStanza):
	// the framed decoder reads it without encoding/xml and takes its
	// parsed addresses.
	out, err := r.tr.InboundFramed(ctx, st.Raw(), st.From, st.To)
	if err != nil {
		// Only a stanza that cannot even be answered, or a Translator
		// without its required fields: s2s answers internal-server-error.
		return err
	}
	for _, b := range out {
		if err := s.sendRaw(ctx, b); err != nil {
			r.log.LogAttrs(ctx, slog.LevelInfo, "federation: reply not sent",
				slog.String("to", st.From.String()), slog.Any("err", err))
		}
	}
	return nil
}

// handleDomain answers what any XMPP server answers for its own domains,
// without the host (RFC 6120 §10.5.1: the server handles a stanza to its
// domainpart directly or answers with an error).
func (s *Server) handleDomain(ctx context.Context, st *s2s.Stanza) error {
	r := &s.run
	switch st.Kind {
	case "iq":
		switch st.Type {
		case "get", "set":
			return s.domainIQ(ctx, st)
		case "result", "error":
			if !s.resolvePending(st) {
				r.log.LogAttrs(ctx, slog.LevelDebug, "federation: iq answer to no request of ours dropped",
					slog.String("from", st.From.String()), slog.String("to", st.To.String()), slog.String("id", st.ID))
			}
			return nil
		}
		// RFC 6120 §8.2.3 (s2s refuses these first).
		return errBadRequest()
	case "message":
		if st.Type == "error" || st.Type == "headline" {
			// Never answered (RFC 6120 §8.3.1; RFC 6121 §8.5.3.2.1 has
			// headlines ignored when nobody takes them).
			r.log.LogAttrs(ctx, slog.LevelDebug, "federation: message to our domain dropped",
				slog.String("from", st.From.String()), slog.String("to", st.To.String()), slog.String("type", st.Type))
			return nil
		}
		// RFC 6120 §10.5.1 lets a server answer a stanza to its domain
		// with an error rather than handle it; there is no user behind
		// the domain to read the message.
		return errServiceUnavailable()
	}
	// Presence to the domain itself: nobody subscribes to or probes a
	// domain here, and presence is never answered with an error for that
	// (RFC 6121 §4.3, §8.5): it is logged and dropped.
	r.log.LogAttrs(ctx, slog.LevelDebug, "federation: presence to our domain dropped",
		slog.String("from", st.From.String()), slog.String("to", st.To.String()), slog.String("type", st.Type))
	return nil
}

// domainIQ answers an iq get or set to one of our domains: XEP-0199 ping,
// XEP-0030 disco#info and disco#items, XEP-0092 version when
// Server.Version is set. Other namespaces get service-unavailable (RFC
// 6120 §8.4: a namespace the entity does not understand); a known
// namespace with a request we do not serve (a set, a node) gets
// feature-not-implemented or item-not-found.
func (s *Server) domainIQ(ctx context.Context, st *s2s.Stanza) error {
	reply, err := s.domainAnswer(st)
	if err != nil {
		return err
	}
	if err := s.run.s2s.Send(ctx, reply); err != nil {
		s.run.log.LogAttrs(ctx, slog.LevelDebug, "federation: iq result not sent",
			slog.String("to", st.From.String()), slog.Any("err", err))
	}
	return nil
}

// domainAnswer returns the result to an iq get or set to one of our
// domains, or the stanza.Error to answer it with.
func (s *Server) domainAnswer(st *s2s.Stanza) (*s2s.Stanza, error) {
	child, node, err := iqChild(st)
	if err != nil {
		return nil, err
	}
	var payload []byte
	switch child.Space {
	case wire.NSPing:
		if child.Local != "ping" {
			return nil, errServiceUnavailable()
		}
		if st.Type != "get" {
			return nil, errNotImplemented() // XEP-0199 §4.2 defines a get only
		}
		// XEP-0199 §4.2: an empty result.
	case discoInfoNS, discoItemsNS:
		if child.Local != "query" {
			return nil, errServiceUnavailable()
		}
		if st.Type != "get" {
			return nil, errNotImplemented() // XEP-0030 §3, §4 define gets only
		}
		if node != "" {
			// XEP-0030 §3.2: no such node.
			return nil, errItemNotFound()
		}
		if child.Space == discoInfoNS {
			payload = s.discoInfo()
		} else {
			payload = []byte("<query xmlns='" + discoItemsNS + "'/>")
		}
	case versionNS:
		if child.Local != "query" || s.Version == nil {
			// The host did not opt in: the feature is not offered (and
			// not advertised in disco#info).
			return nil, errServiceUnavailable()
		}
		if st.Type != "get" {
			return nil, errNotImplemented() // XEP-0092 §2 defines a get only
		}
		payload = versionPayload(s.Version)
	default:
		return nil, errServiceUnavailable()
	}
	// An error here is ours (internal-server-error): the payloads are
	// built by this package.
	return st.ResultReply(payload)
}

// iqChild returns the name of the one child element of an iq get or set
// and its node attribute (XEP-0030); an iq with no child or several is a
// bad-request (RFC 6120 §8.2.3). It reads raw tokens and resolves the
// child's namespace from the declarations in scope itself: this is the
// path of every ping, and encoding/xml's namespace bookkeeping would
// double its allocations.
func iqChild(st *s2s.Stanza) (name xml.Name, node string, err error) {
	d := xml.NewDecoder(bytes.NewReader(st.Raw()))
	var rootAttrs []xml.Attr
	depth, n := 0, 0
	for {
		tok, terr := d.RawToken()
		if terr == io.EOF {
			break
		}
		if terr != nil {
			return xml.Name{}, "", errBadRequest()
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch depth {
			case 1:
				rootAttrs = t.Attr
			case 2:
				n++
				if n > 1 {
					break
				}
				name = xml.Name{Space: resolveNS(t.Name.Space, t.Attr, rootAttrs), Local: t.Name.Local}
				for _, a := range t.Attr {
					if a.Name.Space == "" && a.Name.Local == "node" {
						node = a.Value
					}
				}
			}
		case xml.EndElement:
			depth--
		}
	}
	if n != 1 || depth != 0 {
		e := errBadRequest()
		e.Text = map[string]string{"": "An iq get or set holds exactly one child element (RFC 6120 §8.2.3)"}
		return xml.Name{}, "", e
	}
	return name, node, nil
}

// resolveNS returns the namespace of an element with prefix (from
// RawToken) given the attributes of the element and of its parent, the
// stanza; the default namespace falls back to the stanza's, which is
// jabber:server (RFC 6120 §4.8.3). An undeclared prefix resolves to "",
// which no feature matches.
func resolveNS(prefix string, own, parent []xml.Attr) string {
	for _, attrs := range [2][]xml.Attr{own, parent} {
		for _, a := range attrs {
			if prefix == "" && a.Name.Space == "" && a.Name.Local == "xmlns" {
				return a.Value
			}
			if prefix != "" && a.Name.Space == "xmlns" && a.Name.Local == prefix {
				return a.Value
			}
		}
	}
	if prefix == "" {
		return wire.NSServer
	}
	return ""
}

// discoInfo is the XEP-0030 §3.1 answer for our domains: a server of
// category server and type im, and exactly the features enabled.
func (s *Server) discoInfo() []byte {
	var b bytes.Buffer
	b.WriteString("<query xmlns='" + discoInfoNS + "'><identity category='server' type='im'/>")
	features := []string{discoInfoNS, discoItemsNS, wire.NSPing}
	if s.Version != nil {
		features = append(features, versionNS)
	}
	for _, f := range features {
		b.WriteString("<feature var='")
		_ = xml.EscapeText(&b, []byte(f))
		b.WriteString("'/>")
	}
	b.WriteString("</query>")
	return b.Bytes()
}

// versionPayload is the XEP-0092 §2 answer.
func versionPayload(v *Version) []byte {
	var b bytes.Buffer
	b.WriteString("<query xmlns='" + versionNS + "'><name>")
	_ = xml.EscapeText(&b, []byte(v.Name))
	b.WriteString("</name><version>")
	_ = xml.EscapeText(&b, []byte(v.Version))
	b.WriteString("</version>")
	if v.OS != "" {
		b.WriteString("<os>")
		_ = xml.EscapeText(&b, []byte(v.OS))
		b.WriteString("</os>")
	}
	b.WriteString("</query>")
	return b.Bytes()
}

// ---- Error replies from remote servers ----

// remoteError hands an error reply to one of our stanzas to
// Backend.Bounce, with the remote's error. The value is rebuilt from what
// the reply carried back (RFC 6120 §8.3.1 lets the error include the
// original payload): a message error becomes a *translate.Message from
// the local user to the remote sender of the error (Type Chat, the id,
// and the body, chat state or receipt when the reply included them); a
// presence error becomes a *translate.Presence with what the reply
// carried (the reply does not say whether a presence update or a
// subscription stanza failed).
func (s *Server) remoteError(ctx context.Context, st *s2s.Stanza) {
	r := &s.run
	e, err := errorOf(st)
	if err != nil || e.Condition == "" {
		// RFC 6120 §8.3.2: an error stanza MUST contain an <error/>
		// child; without a known condition it is undefined-condition.
		e = stanza.Error{Type: stanza.Cancel, Condition: stanza.UndefinedCondition,
			Text: map[string]string{"": "the remote server's error reply has no valid <error/> element"}}
	}
	v := s.rebuild(st)
	if m := s.Metrics; m != nil {
		m.Bounced(string(e.Condition))
	}
	r.log.LogAttrs(ctx, slog.LevelDebug, "federation: error reply from remote",
		slog.String("from", st.From.String()), slog.String("to", st.To.String()), slog.String("id", st.ID),
		slog.String("condition", string(e.Condition)))
	s.Backend.Bounce(ctx, v, e)
}

// errorOf decodes the <error/> child of an error stanza (RFC 6120 §8.3.2).
func errorOf(st *s2s.Stanza) (stanza.Error, error) {
	d := xml.NewDecoder(bytes.NewReader(st.Raw()))
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return stanza.Error{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name.Local == "error" && (t.Name.Space == wire.NSServer || t.Name.Space == "") {
				var e stanza.Error
				if err := d.DecodeElement(&e, &t); err != nil {
					return stanza.Error{}, err
				}
				return e, nil
			}
		case xml.EndElement:
			depth--
		}
	}
}

// rebuild returns the value an error reply answers, from its payload.
func (s *Server) rebuild(st *s2s.Stanza) translate.Stanza {
	local, remote := st.To, st.From
	if raw, err := originalOf(st); err == nil {
		if v, err := translate.Decode(raw, s.run.presence); err == nil {
			return v
		}
	}
	if st.Kind == "presence" {
		return &translate.Presence{From: local.Bare(), To: remote}
	}
	return &translate.Message{From: local.Bare(), To: remote, ID: st.ID}
}

// originalOf rebuilds the stanza an error reply answers: from and to
// swapped, the children but <error/>, type chat for a message (none for a
// presence), encoded with encoding/xml.
func originalOf(st *s2s.Stanza) ([]byte, error) {
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	start := xml.StartElement{Name: xml.Name{Space: wire.NSServer, Local: st.Kind}, Attr: []xml.Attr{
		{Name: xml.Name{Local: "from"}, Value: st.To.String()},
		{Name: xml.Name{Local: "to"}, Value: st.From.String()},
	}}
	if st.ID != "" {
		start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "id"}, Value: st.ID})
	}
	if st.Kind == "message" {
		start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "type"}, Value: "chat"})
	}
	if err := enc.EncodeToken(start); err != nil {
		return nil, err
	}
	d := xml.NewDecoder(bytes.NewReader(st.Raw()))
	depth, skip := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				continue
			}
			if skip > 0 || (depth == 2 && t.Name.Local == "error" && (t.Name.Space == wire.NSServer || t.Name.Space == "")) {
				skip++
				continue
			}
			tok = xml.StartElement{Name: t.Name, Attr: withoutXMLNS(t.Attr)}
		case xml.EndElement:
			depth--
			if depth == 0 {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
		default:
			if depth <= 1 || skip > 0 {
				continue
			}
		}
		if err := enc.EncodeToken(xml.CopyToken(tok)); err != nil {
			return nil, err
		}
	}
	if err := enc.EncodeToken(start.End()); err != nil {
		return nil, err
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// withoutXMLNS drops namespace declarations: the encoder writes its own.
func withoutXMLNS(attrs []xml.Attr) []xml.Attr {
	out := attrs[:0:0]
	for _, a := range attrs {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		out = append(out, a)
	}
	return out
}

// ---- Our own iq requests ----

// pendingIQ is an iq request of ours waiting for its answer.
type pendingIQ struct {
	to    jid.JID
	reply chan iqAnswer // buffered 1
}

type iqAnswer struct {
	st  *s2s.Stanza
	err error
}

// sendIQ sends an iq get from one of our addresses to a remote one, with
// payload (one element) as its child, and waits for the result or error
// with the same id (RFC 6120 §8.2.3) until ctx ends. It returns the reply
// stanza (type result or error), or the error that kept the request from
// being sent or answered: a *policy.Denial, the stanza.Error of a bounce
// (remote-server-not-found, remote-server-timeout), ctx's error,
// ErrServerClosed.
func (s *Server) sendIQ(ctx context.Context, from, to jid.JID, payload []byte) (*s2s.Stanza, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	id := "fed-" + randomID()
	var b bytes.Buffer
	b.WriteString("<iq xmlns='" + wire.NSServer + "' type='get'")
	writeAttr(&b, "id", id)
	writeAttr(&b, "from", from.String())
	writeAttr(&b, "to", to.String())
	b.WriteString(">")
	b.Write(payload)
	b.WriteString("</iq>")
	st, err := s2s.ParseStanza(b.Bytes())
	if err != nil {
		return nil, err
	}
	r := &s.run
	p := &pendingIQ{to: to, reply: make(chan iqAnswer, 1)}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrServerClosed
	}
	r.pending[id] = p
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, id)
		r.mu.Unlock()
	}()
	if err := r.s2s.Send(ctx, st); err != nil {
		s.countDenied(err)
		return nil, mapClosed(err)
	}
	select {
	case a := <-p.reply:
		return a.st, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// resolvePending hands an iq result or error to the request of ours it
// answers (same id, from the address we sent to); it reports whether
// there was one.
func (s *Server) resolvePending(st *s2s.Stanza) bool {
	return s.answerPending(st.ID, func(p *pendingIQ) (iqAnswer, bool) {
		if !st.From.Equal(p.to) {
			return iqAnswer{}, false // RFC 6120 §8.1.2.1: a reply comes from the address asked
		}
		return iqAnswer{st: st}, true
	})
}

// answerPending completes the pending request id with what answer gives.
func (s *Server) answerPending(id string, answer func(*pendingIQ) (iqAnswer, bool)) bool {
	r := &s.run
	r.mu.Lock()
	p := r.pending[id]
	var a iqAnswer
	ok := p != nil
	if ok {
		a, ok = answer(p)
	}
	if ok {
		delete(r.pending, id)
	}
	r.mu.Unlock()
	if ok {
		p.reply <- a // buffered, and completed once
	}
	return ok
}

// failPending ends every waiting request with ErrServerClosed.
func (s *Server) failPending() {
	r := &s.run
	r.mu.Lock()
	ps := r.pending
	r.pending = make(map[string]*pendingIQ)
	r.mu.Unlock()
	for _, p := range ps {
		p.reply <- iqAnswer{err: ErrServerClosed}
	}
}

// writeAttr writes ` name='value'` with value escaped by encoding/xml.
func writeAttr(b *bytes.Buffer, name, value string) {
	b.WriteByte(' ')
	b.WriteString(name)
	b.WriteString("='")
	_ = xml.EscapeText(b, []byte(value))
	b.WriteByte('\'')
}
