package translate

import (
	"bytes"
	"crypto/rand"
	"encoding/xml"
	"errors"
	htmlstd "html"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// Namespaces the codec reads and writes.
const (
	nsServer      = "jabber:server"                          // RFC 6120 §4.8.3
	nsXML         = "http://www.w3.org/XML/1998/namespace"   // xml:lang
	nsChatStates  = "http://jabber.org/protocol/chatstates"  // XEP-0085
	nsReceipts    = "urn:xmpp:receipts"                      // XEP-0184
	nsDelay       = "urn:xmpp:delay"                         // XEP-0203
	nsCorrect     = "urn:xmpp:message-correct:0"             // XEP-0308
	nsIdle        = "urn:xmpp:idle:1"                        // XEP-0319
	nsMUCUser     = "http://jabber.org/protocol/muc#user"    // XEP-0045
	nsConference  = "jabber:x:conference"                    // XEP-0249
	nsJingle      = "urn:xmpp:jingle:1"                      // XEP-0166 (and XEP-0234 over it)
	nsJingleMsg   = "urn:xmpp:jingle-message:0"              // XEP-0353
	nsSI          = "http://jabber.org/protocol/si"          // XEP-0095/0096
	nsBytestreams = "http://jabber.org/protocol/bytestreams" // XEP-0065
	nsIBB         = "http://jabber.org/protocol/ibb"         // XEP-0047
	nsOOB         = "jabber:x:oob"                           // XEP-0066 (HTTP upload offers)
	nsIQOOB       = "jabber:iq:oob"                          // XEP-0066
)

// maxDepth is the deepest element nesting Decode reads; the stanza is
// depth 1.
const maxDepth = 64

// imOnly is the text of the answer to a message with nothing to deliver.
const imOnly = "Only instant messages, chat states (XEP-0085) and delivery receipts (XEP-0184) are supported"

// node is one parsed element: its name, attributes, direct text and
// child elements.
type node struct {
	name xml.Name
	attr []xml.Attr
	text strings.Builder
	kids []*node
	// kid0 holds the first child for parseFramed, so that an element with
	// one child (a message's body) needs no slice of its own.
	kid0 [1]*node
}

// get returns the value of the attribute local (no namespace).
func (n *node) get(local string) (string, bool) {
	for _, a := range n.attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// lang returns the element's own xml:lang.
func (n *node) lang() (string, bool) {
	for _, a := range n.attr {
		if a.Name.Space == nsXML && a.Name.Local == "lang" {
			return a.Value, true
		}
	}
	return "", false
}

// parseStanza reads raw as exactly one element (whitespace around it
// allowed), at most maxDepth deep, with no comment, processing
// instruction or directive (RFC 6120 §11.1). On an error after the start
// tag, it still returns the root, with its attributes.
func parseStanza(raw []byte) (*node, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	start, err := firstStart(d)
	if err != nil {
		return nil, badRequest("Not an XML stanza: %v", err)
	}
	root := &node{name: start.Name, attr: start.Attr}
	stack := []*node{root}
	for len(stack) > 0 {
		tok, err := d.Token()
		if err == io.EOF {
			return root, badRequest("The <%s/> element is not closed", root.name.Local)
		}
		if err != nil {
			return root, badRequest("The stanza is not well-formed XML: %v", err)
		}
		top := stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= maxDepth {
				return root, badRequest("The stanza nests elements deeper than %d", maxDepth)
			}
			if err := uniqueAttrs(t); err != nil {
				return root, badRequest("The stanza is not well-formed XML: %v", err)
			}
			n := &node{name: t.Name, attr: t.Attr}
			top.kids = append(top.kids, n)
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			top.text.Write(t)
		default:
			return root, badRequest("The stanza holds a %T, which XMPP does not allow (RFC 6120 §11.1)", tok)
		}
	}
	if !trailingSpace(d) {
		return root, badRequest("Data follows the stanza")
	}
	return root, nil
}

// decoder holds what Decode knows about the stanza being read.
type decoder struct {
	root     *node
	ns       string // the stanza's namespace: "" (inherited) or jabber:server
	from, to jid.JID
	id       string
	lang     string // the stanza's xml:lang
}

// Decode turns one jabber:server stanza (raw XML, as s2s.Stanza.Raw gives
// it) into an internal value, using pm for presence (nil: the default
// table, NewPresenceTable). It never panics. Its error is a stanza.Error
// to answer the sender with (RFC 6120 §8.3) — groupchat gets
// service-unavailable, MUC invitations (XEP-0045, XEP-0249), Jingle
// (XEP-0166), file transfer (XEP-0096/0234) and HTTP upload offers get
// feature-not-implemented, a malformed address jid-malformed, anything
// else that is not an IM, chat state, receipt, presence, subscription or
// probe service-unavailable — or ErrIgnore for a stanza that is dropped on
// purpose without an answer (a headline message, an error stanza; log
// it). Use ErrorReply to build the answer.
//
// The package documentation lists every rule. A stanza that is not one
// XML element at all is a bad-request too, though ErrorReply cannot
// answer it.
func Decode(raw []byte, pm PresenceMapper) (Stanza, error) {
	root, err := parseStanza(raw)
	return decodeTree(root, err, addrHints{}, pm)
}

// DecodeFramed is Decode for a stanza that the s2s layer has already read
// and checked: raw is an s2s.Stanza's Raw, from and to its From and To.
// It reads raw directly on the bytes instead of with encoding/xml, and
// takes from and to instead of parsing the from and to attributes again
// when they are the JIDs those attributes parse to (a JID given that
// does not match its attribute is ignored, and the attribute parsed).
//
// The contract: raw is one element that internal/wire (the stream
// reader) or s2s.ParseStanza accepted, that is well-formed restricted XML.
// On such bytes DecodeFramed returns what Decode returns, the same value
// or the same error condition (a differential fuzz test holds it to
// that). On other bytes it returns an error or a value and never panics,
// but it does not reject all that Decode rejects: bytes from anywhere
// else go to Decode.
func DecodeFramed(raw []byte, from, to jid.JID, pm PresenceMapper) (Stanza, error) {
	hints := addrHints{from: from, to: to, set: true}
	root, matched, err := parseFramed(raw, hints)
	hints.matched = matched
	return decodeTree(root, err, hints, pm)
}

// addrHints are the already-parsed addresses DecodeFramed is given.
type addrHints struct {
	from, to jid.JID
	set      bool
	// matched says that parseFramed found the stanza's from (0) and to
	// (1) attributes to be from and to, and left their values empty.
	matched [2]bool
}

// decodeTree is Decode after the parse: root and err are what
// parseStanza or parseFramed returned.
func decodeTree(root *node, err error, hints addrHints, pm PresenceMapper) (Stanza, error) {
	if pm == nil {
		pm = (*PresenceTable)(nil) // the default table, without allocating one
	}
	if root == nil {
		return nil, err
	}
	typ, _ := root.get("type")
	// RFC 6120 §8.3.1: an error stanza is never answered, even a broken
	// one; §8.2.3: nor is an iq result.
	if typ == "error" || (typ == "result" && root.name.Local == "iq") {
		return nil, ErrIgnore
	}
	if err != nil {
		return nil, err
	}
	ns := root.name.Space
	if ns != "" && ns != nsServer {
		return nil, badRequest("The stanza is in namespace %s, not %s", quote(ns), nsServer)
	}
	switch root.name.Local {
	case "message":
		// REFERENCE §5.7 #74: headline messages are dropped (and RFC 6121
		// §8.5.3.2.1 has the server ignore them when no resource matches).
		if typ == "headline" {
			return nil, ErrIgnore
		}
	case "iq", "presence":
	default:
		return nil, badRequest("<%s/> is not a message, presence or iq stanza", root.name.Local)
	}
	dec := &decoder{root: root, ns: ns}
	if err := dec.header(hints); err != nil {
		return nil, err
	}
	switch root.name.Local {
	case "message":
		return dec.message(typ)
	case "presence":
		return dec.presence(typ, pm)
	}
	return nil, dec.iq(typ)
}

// header reads the stanza's from, to, id and xml:lang; a hint that is
// what its attribute parses to is taken instead of parsing it again.
func (d *decoder) header(hints addrHints) error {
	var err error
	if d.from, err = d.addr("from", hints.set, hints.matched[0], hints.from); err != nil {
		return err
	}
	if d.to, err = d.addr("to", hints.set, hints.matched[1], hints.to); err != nil {
		return err
	}
	d.id, _ = d.root.get("id")
	if err := checkText(d.id); err != nil {
		return badRequest("The id attribute %v", err)
	}
	if l, ok := d.root.lang(); ok {
		if err := checkLang(l); err != nil {
			return badRequest("The stanza's xml:lang %v", err)
		}
		d.lang = l
	}
	return nil
}

// addr reads the address attribute name, taking hint for it when useHint
// is set and the hint is what the attribute parses to (matched: the parser
// found it so, and kept no value).
func (d *decoder) addr(name string, useHint, matched bool, hint jid.JID) (jid.JID, error) {
	v, ok := d.root.get(name)
	if !ok {
		// RFC 6120 §8.1.1.1, §8.1.2.1: both are required between
		// servers.
		return jid.JID{}, badRequest("The stanza has no '%s' address", name)
	}
	if matched || (useHint && hintHolds(hint, v)) {
		return hint, nil
	}
	j, err := parseJID(v)
	if err != nil {
		// RFC 6120 §8.3.3.8, RFC 7622.
		return jid.JID{}, stanzaErr(stanza.Modify, stanza.JIDMalformed, "The '%s' address %s is not a valid JID: %v", name, quote(v), err)
	}
	return j, nil
}

// is reports whether n is the element local in the stanza's namespace.
func (d *decoder) is(n *node, local string) bool {
	return n.name.Local == local && (n.name.Space == d.ns || n.name.Space == nsServer)
}

// textOf returns the text of a text-only element, or bad-request.
func textOf(n *node) (string, error) {
	if len(n.kids) > 0 {
		return "", badRequest("The <%s/> element must hold text only", n.name.Local)
	}
	return n.text.String(), nil
}

// pick chooses among the elements named local (body, subject, status) the
// first with no xml:lang or the stanza's, else the first (RFC 6121
// §5.2.3, §4.7.2.2: one per language), and returns its text and effective
// language (inherited from the stanza).
func (d *decoder) pick(local string) (text, lang string, found bool, err error) {
	var chosen *node
	for _, k := range d.root.kids {
		if !d.is(k, local) {
			continue
		}
		l, has := k.lang()
		if chosen == nil {
			chosen = k
		}
		if !has || strings.EqualFold(l, d.lang) {
			chosen = k
			break
		}
	}
	if chosen == nil {
		return "", d.lang, false, nil
	}
	text, err = textOf(chosen)
	if err != nil {
		return "", "", false, err
	}
	lang = d.lang
	if l, has := chosen.lang(); has {
		if err := checkLang(l); err != nil {
			return "", "", false, badRequest("The xml:lang of <%s/> %v", local, err)
		}
		lang = l
	}
	return text, lang, true, nil
}

// message decodes a message of type typ (not error or headline).
func (d *decoder) message(typ string) (Stanza, error) {
	m := &Message{From: d.from, To: d.to, ID: d.id}
	switch typ {
	case "chat":
		m.Type = Chat
	case "groupchat":
		// REFERENCE §5.7 #74 and §4.1: conversations stay one-to-one.
		return nil, unavailable("Group chat messages are not supported: conversations with this server are one-to-one")
	default:
		// RFC 6121 §5.2.2: no type, and an unknown type, are normal.
		m.Type = Normal
	}
	// What is refused whatever else the message holds (REFERENCE §5.7
	// #79, #80).
	for _, k := range d.root.kids {
		switch k.name.Space {
		case nsMUCUser:
			for _, g := range k.kids {
				if g.name.Space == nsMUCUser && g.name.Local == "invite" {
					return nil, notImplemented("Group chat invitations (XEP-0045) are not supported")
				}
			}
		case nsConference:
			return nil, notImplemented("Group chat invitations (XEP-0249) are not supported")
		case nsJingleMsg:
			return nil, notImplemented("Calls and Jingle sessions (XEP-0353, XEP-0166) are not supported")
		case nsOOB:
			return nil, notImplemented("File offers (XEP-0066, HTTP upload) are not supported")
		}
	}
	var err error
	// The body's language, else the stanza's (RFC 6120 §8.1.5, inherited).
	if m.Body, m.Lang, _, err = d.pick("body"); err != nil {
		return nil, err
	}
	if m.Subject, _, _, err = d.pick("subject"); err != nil {
		return nil, err
	}
	var haveDelay, haveThread bool
	for _, k := range d.root.kids {
		switch {
		case d.is(k, "thread"):
			t, err := textOf(k)
			if err != nil {
				return nil, err
			}
			if !haveThread {
				m.Thread, haveThread = t, true
			}
		case k.name.Space == nsChatStates:
			// XEP-0085: one chat state per message.
			if m.ChatState != NoChatState {
				return nil, badRequest("The message carries more than one chat state (XEP-0085)")
			}
			if m.ChatState = chatState(k.name.Local); m.ChatState == NoChatState {
				return nil, badRequest("<%s/> is not an XEP-0085 chat state", k.name.Local)
			}
		case k.name.Space == nsReceipts && k.name.Local == "request":
			m.RequestReceipt = true
		case k.name.Space == nsReceipts && k.name.Local == "received":
			id, _ := k.get("id")
			if id == "" {
				return nil, badRequest("The XEP-0184 receipt has no id")
			}
			m.ReceiptFor = id
		case k.name.Space == nsDelay && k.name.Local == "delay":
			stamp, _ := k.get("stamp")
			t, err := parseStamp(stamp)
			if err != nil {
				return nil, badRequest("The XEP-0203 delay stamp %s is not an XEP-0082 date-time", quote(stamp))
			}
			if !haveDelay {
				m.Delay, haveDelay = t, true
			}
		case k.name.Space == nsCorrect && k.name.Local == "replace":
			id, _ := k.get("id")
			if id == "" {
				return nil, badRequest("The XEP-0308 correction has no id")
			}
			m.Replaces = id
		}
	}
	for _, f := range [...]struct{ name, v string }{
		{"body", m.Body}, {"subject", m.Subject}, {"thread", m.Thread},
		{"receipt id", m.ReceiptFor}, {"correction id", m.Replaces},
	} {
		if err := checkText(f.v); err != nil {
			return nil, badRequest("The message's %s %v", f.name, err)
		}
	}
	// RFC 6121 §8.5.3.2.1 has the server deliver or store a message for an
	// existing user; with nothing a host can show, the sender learns it
	// was not delivered instead of the message vanishing.
	if m.Body == "" && m.ChatState == NoChatState && m.ReceiptFor == "" {
		return nil, notImplemented(imOnly)
	}
	return m, nil
}

// chatState returns the XEP-0085 state named local, or NoChatState.
func chatState(local string) ChatState {
	for c := Active; c <= Gone; c++ {
		if c.String() == local {
			return c
		}
	}
	return NoChatState
}

// presence decodes a presence of type typ (not error).
func (d *decoder) presence(typ string, pm PresenceMapper) (Stanza, error) {
	var action SubscriptionAction
	switch typ {
	case "", "unavailable":
	case "probe":
		// RFC 6121 §4.3: a probe is between bare JIDs.
		return &Probe{From: d.from.Bare(), To: d.to.Bare(), ID: d.id}, nil
	case "subscribe":
		action = Subscribe
	case "subscribed":
		action = Subscribed
	case "unsubscribe":
		action = Unsubscribe
	case "unsubscribed":
		action = Unsubscribed
	default:
		// RFC 6121 §4.7.1: the type is one of these.
		return nil, badRequest("Presence type %s is not defined by RFC 6121", quote(typ))
	}
	if action != 0 {
		// RFC 6121 §3.1.2: subscriptions are between bare JIDs.
		return &Subscription{From: d.from.Bare(), To: d.to.Bare(), ID: d.id, Action: action}, nil
	}
	unavail := typ == "unavailable"
	p := &Presence{From: d.from, To: d.to}
	var show Show
	var seenShow, seenPriority, seenIdle bool
	for _, k := range d.root.kids {
		switch {
		case d.is(k, "show"):
			// RFC 6121 §4.7.2.1: at most one, one of four values.
			if seenShow {
				return nil, badRequest("The presence has more than one <show/>")
			}
			seenShow = true
			v, err := textOf(k)
			if err != nil {
				return nil, err
			}
			show = Show(strings.TrimSpace(v))
			if show == ShowNone || showIndex(show) < 0 {
				return nil, badRequest("<show/> value %s is not chat, away, xa or dnd (RFC 6121 §4.7.2.1)", quote(v))
			}
		case d.is(k, "priority"):
			// RFC 6121 §4.7.2.3: at most one, -128 to 127.
			if seenPriority {
				return nil, badRequest("The presence has more than one <priority/>")
			}
			seenPriority = true
			v, err := textOf(k)
			if err != nil {
				return nil, err
			}
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 8)
			if err != nil {
				return nil, badRequest("<priority/> %s is not an integer from -128 to 127 (RFC 6121 §4.7.2.3)", quote(v))
			}
			p.Priority = int8(n)
		case k.name.Space == nsIdle && k.name.Local == "idle":
			since, _ := k.get("since")
			t, err := parseStamp(since)
			if err != nil {
				return nil, badRequest("The XEP-0319 idle since %s is not an XEP-0082 date-time", quote(since))
			}
			if !seenIdle && !unavail {
				p.IdleSince, seenIdle = t, true
			}
		}
	}
	status, lang, _, err := d.pick("status")
	if err != nil {
		return nil, err
	}
	if err := checkText(status); err != nil {
		return nil, badRequest("The presence's status %v", err)
	}
	p.Lang = lang
	p.Availability, p.Note = pm.FromXMPP(unavail, show, status)
	labelled := status != "" && p.Note == "" // the status picked a state
	if !unavail && !p.IdleSince.IsZero() && p.Availability != Idle && !labelled {
		// XEP-0319: an idle presence with the show the table gives Idle,
		// and no label that picks a state, is Idle.
		iu, ishow, _ := pm.ToXMPP(Idle, "", false)
		if plain, _ := pm.FromXMPP(false, show, ""); !iu && ishow == show && p.Availability == plain {
			p.Availability = Idle
		}
	}
	return p, nil
}

// iq decodes an iq of type typ (not error or result): users of the host
// have no XMPP resources to answer one.
func (d *decoder) iq(typ string) error {
	if typ != "get" && typ != "set" {
		return badRequest("iq type %s is not get, set, result or error (RFC 6120 §8.2.3)", quote(typ))
	}
	if d.id == "" {
		return badRequest("The iq has no id (RFC 6120 §8.2.3)")
	}
	if len(d.root.kids) != 1 {
		return badRequest("An iq get or set holds exactly one child element (RFC 6120 §8.2.3)")
	}
	switch d.root.kids[0].name.Space {
	case nsJingle:
		return notImplemented("Calls, Jingle sessions and Jingle file transfer (XEP-0166, XEP-0234) are not supported")
	case nsSI, nsBytestreams, nsIBB, nsIQOOB:
		return notImplemented("File transfer (XEP-0096, XEP-0065, XEP-0047, XEP-0066) is not supported")
	}
	// RFC 6121 §8.5.3.2.3 (full JID, no such resource) and RFC 6120 §8.4
	// (bare JID, a namespace the server does not support).
	return unavailable("The recipient does not answer iq requests of this kind")
}

// parseStamp parses an XEP-0082 DateTime (CCYY-MM-DDThh:mm:ss[.sss]TZD)
// and returns it in UTC.
func parseStamp(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("empty")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, errors.New("year out of range")
	}
	return t, nil
}

// formatStamp formats t as an XEP-0082 DateTime in UTC, with fractional
// seconds only when they are not zero (XEP-0203 §3: UTC).
func formatStamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.999999999Z")
}

// checkText returns an error when s is not valid UTF-8 or holds a
// character XML 1.0 does not allow (§2.2 Char).
func checkText(s string) error {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return errors.New("is not valid UTF-8")
			}
		}
		if !xmlChar(r) {
			return errors.New("holds " + strconv.QuoteRune(r) + ", which XML does not allow")
		}
	}
	return nil
}

// xmlChar reports whether r is an XML 1.0 Char.
func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

// checkLang returns an error unless l is "" or has the shape of a BCP 47
// language tag (subtags of 1 to 8 letters or digits joined by hyphens).
func checkLang(l string) error {
	if l == "" {
		return nil
	}
	for sub := range strings.SplitSeq(l, "-") {
		if len(sub) == 0 || len(sub) > 8 {
			return errors.New(quote(l) + " is not a language tag")
		}
		for i := 0; i < len(sub); i++ {
			c := sub[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return errors.New(quote(l) + " is not a language tag")
			}
		}
	}
	return nil
}

// ---- Encode ----

// encoder appends one stanza's XML to b, writing the bytes an xml.Encoder
// would write for the same tokens (double-quoted attributes, start and end
// tags for empty elements, text escaped as xml.EscapeText does: the tests
// hold it to encoding/xml byte for byte), without tokens, an xml.Encoder or
// a bytes.Buffer: one allocation for the result when the size estimate
// holds.
type encoder struct {
	b []byte
}

// newEncoder returns an encoder whose buffer holds size bytes before it
// grows.
func newEncoder(size int) encoder {
	return encoder{b: make([]byte, 0, size+encodeSlack)}
}

// encodeSlack is room for the tags and a little escaping on top of the
// text and address lengths an encode function adds up.
const encodeSlack = 256

// escape appends s escaped as encoding/xml escapes attribute values
// (newline true) or character data (newline false): the five special
// characters as &#34; &#39; &amp; &lt; &gt;, tab, carriage return and (in
// attributes) newline as character references, and a rune XML cannot
// carry as U+FFFD.
func escape(b []byte, s string, newline bool) []byte {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		var esc string
		if c < utf8.RuneSelf {
			i++
			switch c {
			case '"':
				esc = "&#34;"
			case '\'':
				esc = "&#39;"
			case '&':
				esc = "&amp;"
			case '<':
				esc = "&lt;"
			case '>':
				esc = "&gt;"
			case '\t':
				esc = "&#x9;"
			case '\n':
				if !newline {
					continue
				}
				esc = "&#xA;"
			case '\r':
				esc = "&#xD;"
			default:
				if c >= 0x20 {
					continue
				}
				esc = "\uFFFD"
			}
			b = append(b, s[last:i-1]...)
			b = append(b, esc...)
			last = i
			continue
		}
		r, width := utf8.DecodeRuneInString(s[i:])
		i += width
		if xmlChar(r) && (r != utf8.RuneError || width != 1) {
			continue
		}
		b = append(b, s[last:i-width]...)
		b = append(b, "\uFFFD"...)
		last = i
	}
	return append(b, s[last:]...)
}

// attr appends ` name="value"`.
func (w *encoder) attr(name, value string) {
	w.b = append(w.b, ' ')
	w.b = append(w.b, name...)
	w.b = append(w.b, '=', '"')
	w.b = escape(w.b, value, true)
	w.b = append(w.b, '"')
}

// jidAttr appends ` name="j"`, part by part, without j.String().
func (w *encoder) jidAttr(name string, j jid.JID) {
	w.b = append(w.b, ' ')
	w.b = append(w.b, name...)
	w.b = append(w.b, '=', '"')
	if l := j.Localpart(); l != "" {
		w.b = escape(w.b, l, true)
		w.b = append(w.b, '@')
	}
	w.b = escape(w.b, j.Domainpart(), true)
	if r := j.Resourcepart(); r != "" {
		w.b = append(w.b, '/')
		w.b = escape(w.b, r, true)
	}
	w.b = append(w.b, '"')
}

// start appends the start tag of a jabber:server stanza.
func (w *encoder) start(kind string, from, to jid.JID, id, typ, lang string) {
	w.b = append(w.b, '<')
	w.b = append(w.b, kind...)
	w.b = append(w.b, ` xmlns="`+nsServer+`"`...)
	w.jidAttr("from", from)
	w.jidAttr("to", to)
	if id != "" {
		w.attr("id", id)
	}
	if typ != "" {
		w.attr("type", typ)
	}
	if lang != "" {
		w.attr("xml:lang", lang)
	}
	w.b = append(w.b, '>')
}

// open appends <local xmlns="space" (space "" : no xmlns), without the
// closing '>'.
func (w *encoder) open(space, local string) {
	w.b = append(w.b, '<')
	w.b = append(w.b, local...)
	if space != "" {
		w.attr("xmlns", space)
	}
}

// end appends </local>.
func (w *encoder) end(local string) {
	w.b = append(w.b, '<', '/')
	w.b = append(w.b, local...)
	w.b = append(w.b, '>')
}

// elem appends <local xmlns="space">text</local>.
func (w *encoder) elem(space, local, text string) {
	w.open(space, local)
	w.b = append(w.b, '>')
	w.b = escape(w.b, text, false)
	w.end(local)
}

// elemAttr appends <local xmlns="space" name="value"></local>.
func (w *encoder) elemAttr(space, local, name, value string) {
	w.open(space, local)
	w.attr(name, value)
	w.b = append(w.b, '>')
	w.end(local)
}

// finish returns the stanza as e, with e.Raw set.
func (w *encoder) finish(e Encoded) (Encoded, error) {
	e.Raw = w.b
	return e, nil
}

// jidLen is the length of j's string form.
func jidLen(j jid.JID) int {
	n := len(j.Domainpart())
	if l := len(j.Localpart()); l > 0 {
		n += l + 1
	}
	if r := len(j.Resourcepart()); r > 0 {
		n += r + 1
	}
	return n
}

// Encode turns an internal value into one jabber:server stanza (XML, with
// from and to set, ready for s2s.ParseStanza), using pm for presence (nil:
// the default table). shareNote says whether a presence's personal note
// may go out (Federated partners only, REFERENCE §4.5); without it the
// note is replaced by the table's generic label, if any. Errors name the
// field that cannot be encoded (an empty To, a ChatState out of range...):
// they are *FieldError.
//
// A Message, Subscription or Probe with no ID gets a random one; so that
// the stanza can be answered. Text is escaped by encoding/xml; text that
// XML cannot carry (invalid UTF-8, control characters) is an error, never
// replaced. The package documentation lists what each field becomes.
func Encode(v Stanza, pm PresenceMapper, shareNote bool) ([]byte, error) {
	e, err := EncodeStanza(v, pm, shareNote)
	return e.Raw, err
}

// Encoded is one stanza Encode wrote, with what its start tag says: the
// stanza's kind, addresses (bare for a Subscription or Probe), id and type.
// A caller routes it with these instead of parsing Raw again (see
// s2s.TrustedStanza); Raw is exactly what Encode returns.
type Encoded struct {
	// Kind is "message" or "presence".
	Kind string
	// From and To are the from and to attributes.
	From, To jid.JID
	// ID and Type are the id and type attributes ("" when absent).
	ID, Type string
	// Raw is the stanza's XML.
	Raw []byte
}

// EncodeStanza is Encode, returning the stanza's kind, addresses, id and
// type with its bytes. On an error the Encoded is the zero value.
func EncodeStanza(v Stanza, pm PresenceMapper, shareNote bool) (Encoded, error) {
	if pm == nil {
		pm = (*PresenceTable)(nil) // the default table, without allocating one
	}
	switch v := v.(type) {
	case *Message:
		if v != nil {
			return encodeMessage(v)
		}
	case *Presence:
		if v != nil {
			return encodePresence(v, pm, shareNote)
		}
	case *Subscription:
		if v != nil {
			return encodeSubscription(v)
		}
	case *Probe:
		if v != nil {
			return encodeProbe(v)
		}
	}
	return Encoded{}, errors.New("translate: Encode: no value (nil)")
}

// checkAddrs checks that From and To are set.
func checkAddrs(typ string, from, to jid.JID) error {
	if from.Equal(jid.JID{}) || from.Domainpart() == "" {
		return &FieldError{typ, "From", "empty"}
	}
	if to.Equal(jid.JID{}) || to.Domainpart() == "" {
		return &FieldError{typ, "To", "empty"}
	}
	return nil
}

// checkFields checks each named text field.
func checkFields(typ string, fields ...[2]string) error {
	for _, f := range fields {
		if err := checkText(f[1]); err != nil {
			return &FieldError{typ, f[0], err.Error()}
		}
	}
	return nil
}

// checkTime checks that t can be written as an XEP-0082 DateTime.
func checkTime(typ, field string, t time.Time) error {
	if t.IsZero() {
		return nil
	}
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return &FieldError{typ, field, "year " + strconv.Itoa(y) + " cannot be written as an XEP-0082 date-time"}
	}
	return nil
}

// newID returns a random stanza id.
func newID() string { return rand.Text() }

func encodeMessage(m *Message) (Encoded, error) {
	const typ = "Message"
	if err := checkAddrs(typ, m.From, m.To); err != nil {
		return Encoded{}, err
	}
	var mtype string
	switch m.Type {
	case Chat, Normal:
		mtype = m.Type.String()
	default:
		return Encoded{}, &FieldError{typ, "Type", m.Type.String() + " is neither Chat nor Normal"}
	}
	if m.ChatState > Gone {
		return Encoded{}, &FieldError{typ, "ChatState", m.ChatState.String() + " is out of range"}
	}
	if err := checkFields(typ, [2]string{"ID", m.ID}, [2]string{"Body", m.Body}, [2]string{"Subject", m.Subject},
		[2]string{"Thread", m.Thread}, [2]string{"ReceiptFor", m.ReceiptFor}, [2]string{"Replaces", m.Replaces}); err != nil {
		return Encoded{}, err
	}
	if err := checkLang(m.Lang); err != nil {
		return Encoded{}, &FieldError{typ, "Lang", err.Error()}
	}
	if err := checkTime(typ, "Delay", m.Delay); err != nil {
		return Encoded{}, err
	}
	if m.Body == "" && m.ChatState == NoChatState && m.ReceiptFor == "" {
		return Encoded{}, &FieldError{typ, "Body", "empty, and no ChatState or ReceiptFor: nothing to send"}
	}
	id := m.ID
	if id == "" {
		id = newID()
	}
	w := newEncoder(jidLen(m.From) + jidLen(m.To) + len(id) + len(m.Lang) + len(m.Subject) + len(m.Body) + len(m.Thread) + len(m.ReceiptFor) + len(m.Replaces))
	w.start("message", m.From, m.To, id, mtype, m.Lang)
	if m.Subject != "" {
		w.elem("", "subject", m.Subject)
	}
	if m.Body != "" {
		w.elem("", "body", m.Body)
	}
	if m.Thread != "" {
		w.elem("", "thread", m.Thread)
	}
	if m.ChatState != NoChatState {
		w.elem(nsChatStates, m.ChatState.String(), "")
	}
	if m.RequestReceipt {
		w.elem(nsReceipts, "request", "")
	}
	if m.ReceiptFor != "" {
		w.elemAttr(nsReceipts, "received", "id", m.ReceiptFor)
	}
	if !m.Delay.IsZero() {
		w.elemAttr(nsDelay, "delay", "stamp", formatStamp(m.Delay))
	}
	if m.Replaces != "" {
		w.elemAttr(nsCorrect, "replace", "id", m.Replaces)
	}
	w.end("message")
	return w.finish(Encoded{Kind: "message", From: m.From, To: m.To, ID: id, Type: mtype})
}

func encodePresence(p *Presence, pm PresenceMapper, shareNote bool) (Encoded, error) {
	const typ = "Presence"
	if err := checkAddrs(typ, p.From, p.To); err != nil {
		return Encoded{}, err
	}
	switch {
	case p.Availability == Unknown:
		return Encoded{}, &FieldError{typ, "Availability", "unknown: there is no presence to send"}
	case p.Availability > Offline:
		return Encoded{}, &FieldError{typ, "Availability", p.Availability.String() + " is out of range"}
	}
	if err := checkFields(typ, [2]string{"Note", p.Note}); err != nil {
		return Encoded{}, err
	}
	if err := checkLang(p.Lang); err != nil {
		return Encoded{}, &FieldError{typ, "Lang", err.Error()}
	}
	if err := checkTime(typ, "IdleSince", p.IdleSince); err != nil {
		return Encoded{}, err
	}
	unavail, show, status := pm.ToXMPP(p.Availability, p.Note, shareNote)
	if i := showIndex(show); i < 0 || (unavail && show != ShowNone) {
		return Encoded{}, &FieldError{typ, "Availability", "the PresenceMapper gives show " + quote(string(show)) + " for " + p.Availability.String()}
	}
	if err := checkText(status); err != nil {
		return Encoded{}, &FieldError{typ, "Note", "the status text " + err.Error()}
	}
	ptype := ""
	if unavail {
		ptype = "unavailable"
	}
	w := newEncoder(jidLen(p.From) + jidLen(p.To) + len(p.Lang) + len(status))
	w.start("presence", p.From, p.To, "", ptype, p.Lang)
	if show != ShowNone {
		w.elem("", "show", string(show))
	}
	if status != "" {
		w.elem("", "status", status)
	}
	if p.Priority != 0 {
		w.elem("", "priority", strconv.Itoa(int(p.Priority)))
	}
	if !unavail && !p.IdleSince.IsZero() {
		w.elemAttr(nsIdle, "idle", "since", formatStamp(p.IdleSince))
	}
	w.end("presence")
	return w.finish(Encoded{Kind: "presence", From: p.From, To: p.To, Type: ptype})
}

func encodeSubscription(s *Subscription) (Encoded, error) {
	const typ = "Subscription"
	if err := checkAddrs(typ, s.From, s.To); err != nil {
		return Encoded{}, err
	}
	if s.Action < Subscribe || s.Action > Unsubscribed {
		return Encoded{}, &FieldError{typ, "Action", s.Action.String() + " is out of range"}
	}
	if err := checkFields(typ, [2]string{"ID", s.ID}); err != nil {
		return Encoded{}, err
	}
	id := s.ID
	if id == "" {
		id = newID()
	}
	// RFC 6121 §3.1.1-§3.1.2: the request goes to the contact's bare JID,
	// stamped with the user's bare JID.
	w := newEncoder(jidLen(s.From) + jidLen(s.To) + len(id))
	w.start("presence", s.From.Bare(), s.To.Bare(), id, s.Action.String(), "")
	w.end("presence")
	return w.finish(Encoded{Kind: "presence", From: s.From.Bare(), To: s.To.Bare(), ID: id, Type: s.Action.String()})
}

func encodeProbe(p *Probe) (Encoded, error) {
	const typ = "Probe"
	if err := checkAddrs(typ, p.From, p.To); err != nil {
		return Encoded{}, err
	}
	if err := checkFields(typ, [2]string{"ID", p.ID}); err != nil {
		return Encoded{}, err
	}
	id := p.ID
	if id == "" {
		id = newID()
	}
	// RFC 6121 §4.3.1: probes are sent from and to bare JIDs.
	w := newEncoder(jidLen(p.From) + jidLen(p.To) + len(id))
	w.start("presence", p.From.Bare(), p.To.Bare(), id, "probe", "")
	w.end("presence")
	return w.finish(Encoded{Kind: "presence", From: p.From.Bare(), To: p.To.Bare(), ID: id, Type: "probe"})
}

// PlainText reduces HTML, as some hosts write message bodies, to the plain
// text an XMPP body carries (REFERENCE §5.7 #75): tags are dropped, <br>,
// <hr> and the end of a paragraph, div, list item, table row or heading
// become a line break, character references are decoded, and the contents
// of <script>, <style> and comments are dropped. All other whitespace is
// kept as it is. It does not check that html is well formed, and never
// fails. RTF bodies are out of scope: a host with RTF converts them
// itself.
func PlainText(html string) string {
	var b strings.Builder
	skipTo := "" // "script" or "style": drop text up to its end tag
	for i := 0; i < len(html); {
		if html[i] != '<' {
			j := strings.IndexByte(html[i:], '<')
			if j < 0 {
				j = len(html) - i
			}
			if skipTo == "" {
				b.WriteString(htmlstd.UnescapeString(html[i : i+j]))
			}
			i += j
			continue
		}
		rest := html[i+1:]
		if strings.HasPrefix(rest, "!--") {
			end := strings.Index(rest[3:], "-->")
			if end < 0 {
				break
			}
			i += 1 + 3 + end + 3
			continue
		}
		if rest == "" || !(isASCIILetter(rest[0]) || rest[0] == '/' || rest[0] == '!' || rest[0] == '?') {
			// A '<' that starts no tag is text.
			if skipTo == "" {
				b.WriteByte('<')
			}
			i++
			continue
		}
		n, name, closing := scanTag(rest)
		i += 1 + n
		switch {
		case skipTo != "":
			if closing && name == skipTo {
				skipTo = ""
			}
		case (name == "script" || name == "style") && !closing:
			skipTo = name
		case name == "br" || (name == "hr" && !closing),
			closing && (name == "p" || name == "div" || name == "li" || name == "tr" ||
				len(name) == 2 && name[0] == 'h' && name[1] >= '1' && name[1] <= '6'):
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// scanTag reads a tag after its '<': it returns the bytes up to and with
// the closing '>' (all of s when there is none), the tag's lower-case
// name and whether it is an end tag. Quoted attribute values may hold
// '>'.
func scanTag(s string) (n int, name string, closing bool) {
	i := 0
	if i < len(s) && s[i] == '/' {
		closing = true
		i++
	}
	j := i
	for j < len(s) && (isASCIILetter(s[j]) || s[j] >= '0' && s[j] <= '9') {
		j++
	}
	name = strings.ToLower(s[i:j])
	var q byte
	for ; j < len(s); j++ {
		switch c := s[j]; {
		case q != 0:
			if c == q {
				q = 0
			}
		case c == '"' || c == '\'':
			q = c
		case c == '>':
			return j + 1, name, closing
		}
	}
	return len(s), name, closing
}

// isASCIILetter reports whether c is an ASCII letter.
func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
