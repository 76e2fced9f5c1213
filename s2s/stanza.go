package s2s

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
)

// nsServer is the default namespace of server-to-server streams (RFC 6120
// §4.8.3).
const nsServer = "jabber:server"

// nsStanzas is the namespace of stanza error conditions (RFC 6120 §8.3.3).
const nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"

// ErrInvalidStanza is wrapped by every error ParseStanza returns.
var ErrInvalidStanza = errors.New("s2s: invalid stanza")

// Stanza is one message, presence or iq stanza in the jabber:server
// namespace, as received from or sent to a remote server. Its XML is kept
// as it arrived: the library routes stanzas, it does not rewrite them.
type Stanza struct {
	// Kind is "message", "presence" or "iq".
	Kind string
	// From and To are the stanza's addresses; both are required on
	// server-to-server streams (RFC 6120 §8.1.1.1, §8.1.2.1).
	From, To jid.JID
	// ID and Type are the id and type attributes ("" when absent).
	ID, Type string

	raw []byte // self-contained XML of the whole stanza
	// srcDomain and dstDomain are the A-label domains of From and To.
	srcDomain, dstDomain string
}

// ParseStanza parses and validates raw as one complete message, presence
// or iq element in the jabber:server namespace (declared, or left to the
// stream's default), with from and to attributes that are valid JIDs. The
// error, which wraps ErrInvalidStanza, names what is wrong. raw is kept
// (not copied): do not modify it afterwards.
func ParseStanza(raw []byte) (*Stanza, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	var start xml.StartElement
	// The first token must be the stanza's start tag: no prolog, comment,
	// processing instruction or directive (RFC 6120 §11.1).
	tok, err := d.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidStanza, err)
	}
	switch t := tok.(type) {
	case xml.StartElement:
		start = t
	case xml.CharData:
		if len(bytes.TrimSpace(t)) == 0 {
			return nil, fmt.Errorf("%w: leading whitespace before the stanza", ErrInvalidStanza)
		}
		return nil, fmt.Errorf("%w: text before the stanza", ErrInvalidStanza)
	default:
		return nil, fmt.Errorf("%w: %T before the stanza (RFC 6120 §11.1 restricted XML)", ErrInvalidStanza, tok)
	}
	// The stanza is in jabber:server, declared or left to the stream's
	// default namespace (RFC 6120 §4.8.3).
	if ns := start.Name.Space; ns != "" && ns != nsServer {
		return nil, fmt.Errorf("%w: namespace %q, want %q", ErrInvalidStanza, ns, nsServer)
	}
	// Read the rest, counting depth, and demand
	// exactly one element and nothing after it.
	depth := 1
	for depth > 0 {
		tok, err := d.Token()
		if err == io.EOF {
			return nil, fmt.Errorf("%w: <%s> is not closed", ErrInvalidStanza, start.Name.Local)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidStanza, err)
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		case xml.Comment, xml.ProcInst, xml.Directive:
			return nil, fmt.Errorf("%w: %T inside the stanza (RFC 6120 §11.1 restricted XML)", ErrInvalidStanza, tok)
		}
	}
	if rest := bytes.TrimSpace(raw[d.InputOffset():]); len(rest) > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the stanza's end", ErrInvalidStanza, len(rest))
	}
	return newStanza(start.Name.Local, start.Attr, raw, nil)
}

// newStanza builds a Stanza from a top-level element already checked for
// well-formedness (by ParseStanza or the stream reader).
func newStanza(kind string, attrs []xml.Attr, raw []byte, addrs *addrCache) (*Stanza, error) {
	switch kind {
	case "message", "presence", "iq":
	default:
		return nil, fmt.Errorf("%w: element <%s> is not message, presence or iq", ErrInvalidStanza, kind)
	}
	st := &Stanza{Kind: kind, raw: raw}
	var from, to string
	var hasFrom, hasTo bool
	for _, a := range attrs {
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "from":
			from, hasFrom = a.Value, true
		case "to":
			to, hasTo = a.Value, true
		case "id":
			st.ID = a.Value
		case "type":
			st.Type = a.Value
		}
	}
	// RFC 6120 §8.1.1.1 and §8.1.2.1: on server-to-server streams both
	// addresses MUST be present.
	if !hasFrom || from == "" {
		return nil, fmt.Errorf("%w: <%s> has no from address", ErrInvalidStanza, kind)
	}
	if !hasTo || to == "" {
		return nil, fmt.Errorf("%w: <%s> has no to address", ErrInvalidStanza, kind)
	}
	var err error
	if st.From, st.srcDomain, err = addrs.parse(from); err != nil {
		return nil, fmt.Errorf("%w: from %q: %v", ErrInvalidStanza, from, err)
	}
	if st.To, st.dstDomain, err = addrs.parse(to); err != nil {
		return nil, fmt.Errorf("%w: to %q: %v", ErrInvalidStanza, to, err)
	}
	if kind == "iq" {
		// RFC 6120 §8.2.3: an iq MUST have an id and one of four types.
		switch st.Type {
		case "get", "set", "result", "error":
		default:
			return nil, fmt.Errorf("%w: iq type %q is not get, set, result or error", ErrInvalidStanza, st.Type)
		}
		if st.ID == "" {
			return nil, fmt.Errorf("%w: iq has no id", ErrInvalidStanza)
		}
	}
	return st, nil
}

// TrustedStanza builds a Stanza from parts that trusted code already
// built and validated, without parsing raw again: it is the outbound path
// of the federation package, whose stanzas translate.Encode writes from
// typed values (JIDs that jid.New or jid.Parse produced, text it escaped).
//
// The contract, which TrustedStanza does not check: raw is exactly one
// well-formed kind element in the jabber:server namespace, whose from, to,
// id and type attributes are from, to, id and typ (id and typ "" when
// absent), with no comment, processing instruction or directive. Bytes
// that came from the network, or that anyone but such an encoder wrote,
// must go through ParseStanza instead.
//
// What it does check, like ParseStanza: kind is message, presence or iq;
// both addresses are set and their domains are valid (as A-labels); an iq
// has an id and one of the four types; and, cheaply, that raw starts with
// the kind's start tag and ends with '>'. The stanza is still subject to
// all of Server.Send's own checks (the from domain being ours, the user's
// access, the policy). raw is kept (not copied): do not modify it
// afterwards.
func TrustedStanza(kind string, from, to jid.JID, id, typ string, raw []byte) (*Stanza, error) {
	switch kind {
	case "message", "presence", "iq":
	default:
		return nil, fmt.Errorf("%w: element <%s> is not message, presence or iq", ErrInvalidStanza, kind)
	}
	if len(raw) < len(kind)+3 || raw[0] != '<' || string(raw[1:1+len(kind)]) != kind ||
		(raw[1+len(kind)] != ' ' && raw[1+len(kind)] != '>' && raw[1+len(kind)] != '/') || raw[len(raw)-1] != '>' {
		return nil, fmt.Errorf("%w: TrustedStanza: raw is not a <%s> element", ErrInvalidStanza, kind)
	}
	st := &Stanza{Kind: kind, From: from, To: to, ID: id, Type: typ, raw: raw}
	var err error
	if st.srcDomain, err = trustedDomain(from); err != nil {
		return nil, fmt.Errorf("%w: from: %v", ErrInvalidStanza, err)
	}
	if st.dstDomain, err = trustedDomain(to); err != nil {
		return nil, fmt.Errorf("%w: to: %v", ErrInvalidStanza, err)
	}
	if kind == "iq" {
		// RFC 6120 §8.2.3, as in newStanza.
		switch typ {
		case "get", "set", "result", "error":
		default:
			return nil, fmt.Errorf("%w: iq type %q is not get, set, result or error", ErrInvalidStanza, typ)
		}
		if id == "" {
			return nil, fmt.Errorf("%w: iq has no id", ErrInvalidStanza)
		}
	}
	return st, nil
}

// trustedDomain returns the A-label of j's domain; a zero JID (RFC 6120
// §8.1.1.1, §8.1.2.1: both addresses are required) is an error.
func trustedDomain(j jid.JID) (string, error) {
	d := j.Domainpart()
	if d == "" {
		return "", errors.New("no address")
	}
	return domainLabel(d)
}

// parseAddr parses a JID and returns it with its domain as an A-label.
func parseAddr(s string) (jid.JID, string, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, "", err
	}
	d, err := domainLabel(j.Domainpart())
	if err != nil {
		return jid.JID{}, "", err
	}
	return j, d, nil
}

// addrCache remembers the last addresses parsed on one stream: the same
// few JIDs come again and again on a server-to-server stream (both domains
// always, the users of a conversation often), and parsing one (PRECIS,
// IDNA) is the largest cost of receiving a stanza. Only valid addresses are
// kept, so a hit needs no check. It belongs to the stream's read loop: no
// locking. A nil cache parses every time.
type addrCache struct {
	keys [addrCacheSize]string
	jids [addrCacheSize]jid.JID
	doms [addrCacheSize]string
	next int
}

// addrCacheSize is small: a cache per stream must stay cheap for idle
// streams, and a conversation's from and to fit.
const addrCacheSize = 4

// parse is parseAddr through the cache.
func (c *addrCache) parse(s string) (jid.JID, string, error) {
	if c == nil {
		return parseAddr(s)
	}
	for i := range c.keys {
		if c.keys[i] == s && s != "" {
			return c.jids[i], c.doms[i], nil
		}
	}
	j, d, err := parseAddr(s)
	if err != nil {
		return j, d, err
	}
	c.keys[c.next], c.jids[c.next], c.doms[c.next] = s, j, d
	c.next = (c.next + 1) % addrCacheSize
	return j, d, nil
}

// domainLabel returns domain as an A-label, with a fast path for domains
// that already are lower-case ASCII.
func domainLabel(domain string) (string, error) {
	plain := domain != "" && !strings.HasSuffix(domain, ".")
	for i := 0; plain && i < len(domain); i++ {
		c := domain[i]
		plain = c == '.' || c == '-' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
	}
	if plain && !strings.Contains(domain, "xn--") {
		return domain, nil
	}
	return certs.NormalizeDomain(domain)
}

// SenderDomain returns the domain of From as an A-label (what the pool
// and the policy use), without building a new string.
func (st *Stanza) SenderDomain() string { return st.srcDomain }

// RecipientDomain returns the domain of To as an A-label, without
// building a new string.
func (st *Stanza) RecipientDomain() string { return st.dstDomain }

// Raw returns the stanza's XML. It is shared: do not modify it.
func (st *Stanza) Raw() []byte { return st.raw }

// TokenReader returns a reader of the tokens of Raw (namespaces resolved,
// as by xml.Decoder.Token).
func (st *Stanza) TokenReader() xml.TokenReader {
	return xml.NewDecoder(bytes.NewReader(st.raw))
}

// isError reports whether st is an error stanza, which is never answered
// with another error (RFC 6120 §8.3.1).
func (st *Stanza) isError() bool { return st.Type == "error" }

// ErrorReply returns the error reply to st that RFC 6120 §8.3.1 describes:
// the same kind and id, from and to swapped, type='error', the original
// children, then the <error/> element for e. It refuses (with an error) to
// answer a stanza that is itself an error, so that two servers never
// bounce errors at each other forever.
func (st *Stanza) ErrorReply(e stanza.Error) (*Stanza, error) {
	if st.isError() {
		return nil, fmt.Errorf("s2s: no error reply to an error stanza (<%s type='error' id=%q from=%q>)", st.Kind, st.ID, st.From)
	}
	if e.Condition == "" {
		return nil, errors.New("s2s: ErrorReply: stanza.Error has no Condition")
	}
	inner, decls, err := splitStanza(st.raw)
	if err != nil {
		return nil, err
	}
	typ := string(e.Type)
	if typ == "" {
		typ = string(stanza.Cancel)
	}
	b := make([]byte, 0, len(st.raw)+200)
	b = append(b, '<')
	b = append(b, st.Kind...)
	b = append(b, " xmlns='jabber:server'"...)
	b = append(b, decls...)
	b = appendAttr(b, "from", st.To.String())
	b = appendAttr(b, "to", st.From.String())
	b = appendAttr(b, "type", "error")
	if st.ID != "" {
		b = appendAttr(b, "id", st.ID)
	}
	b = append(b, '>')
	b = append(b, inner...)
	b = append(b, "<error"...)
	b = appendAttr(b, "type", typ)
	if by := e.By.String(); by != "" {
		b = appendAttr(b, "by", by)
	}
	b = append(b, "><"...)
	b = appendEscaped(b, string(e.Condition))
	b = append(b, " xmlns='"+nsStanzas+"'/>"...)
	for lang, text := range e.Text {
		b = append(b, "<text xmlns='"+nsStanzas+"'"...)
		if lang != "" {
			b = appendAttr(b, "xml:lang", lang)
		}
		b = append(b, '>')
		b = appendEscaped(b, text)
		b = append(b, "</text>"...)
	}
	b = append(b, "</error></"...)
	b = append(b, st.Kind...)
	b = append(b, '>')
	return &Stanza{
		Kind: st.Kind, From: st.To, To: st.From, ID: st.ID, Type: "error",
		raw: b, srcDomain: st.dstDomain, dstDomain: st.srcDomain,
	}, nil
}

// splitStanza returns the inner XML of a stanza's root element and the
// prefixed namespace declarations (" xmlns:x='…'") of its start tag, which
// the children may rely on.
func splitStanza(raw []byte) (inner, decls []byte, err error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	tok, err := d.RawToken()
	if err != nil {
		return nil, nil, fmt.Errorf("s2s: stanza XML: %v", err)
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return nil, nil, fmt.Errorf("s2s: stanza XML starts with %T", tok)
	}
	for _, a := range start.Attr {
		if a.Name.Space == "xmlns" {
			decls = appendAttr(decls, "xmlns:"+a.Name.Local, a.Value)
		}
	}
	off := int(d.InputOffset())
	end := bytes.LastIndex(raw, []byte("</"))
	if end < off || bytes.HasSuffix(bytes.TrimSpace(raw[:off]), []byte("/>")) {
		return nil, decls, nil // <message …/>
	}
	return raw[off:end], decls, nil
}

// appendAttr appends ` name='value'` with value escaped.
func appendAttr(b []byte, name, value string) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, "='"...)
	b = appendEscaped(b, value)
	return append(b, '\'')
}

// appendEscaped appends s escaped for XML text and single- or
// double-quoted attribute values.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '&':
			b = append(b, "&amp;"...)
		case '\'':
			b = append(b, "&apos;"...)
		case '"':
			b = append(b, "&quot;"...)
		default:
			b = append(b, c)
		}
	}
	return b
}
