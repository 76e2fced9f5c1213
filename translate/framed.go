package translate

import (
	"bytes"
	"encoding/xml"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file reads a stanza that the s2s layer has already framed and
// checked for well-formedness (internal/wire on a stream, or
// s2s.ParseStanza) into the same tree parseStanza builds with
// encoding/xml, directly on the bytes: names, namespaces (resolved as
// encoding/xml resolves them), attributes, text with the five predefined
// entities, character references, CDATA sections and encoding/xml's
// line-end handling. It trusts the framing for what that already
// rejected (malformed syntax, restricted XML, undeclared prefixes,
// characters XML forbids): on such bytes it returns an error or some
// tree, and never panics or loops. The differential fuzz test
// (FuzzDecodeFramedMatchesDecode) holds the two readers to the same
// result on everything the framer accepts.

// framedScope is one namespace declaration in scope.
type framedScope struct {
	prefix, uri string
	depth       int // the depth of the element that declared it
}

// framedParser is parseFramed's cursor. The namespace scope and the
// scratch attributes are passed around as slices instead of being kept
// here, so that their arrays stay on parseFramed's stack.
type framedParser struct {
	raw []byte
	i   int
	// hints are DecodeFramed's addresses; matched says which of them the
	// stanza's first from and to attributes are (their values are then
	// not copied: the node keeps ""), seen which of those attributes
	// were read.
	hints         addrHints
	matched, seen [2]bool
}

// framedAttr is an attribute as written: its qualified name split at the
// colon, and its decoded value.
type framedAttr struct {
	prefix, local, value string
}

// errFramed is the error of a stanza parseFramed cannot read: something
// the framer should have refused.
func errFramed(what string) error {
	return badRequest("The stanza is not well-formed XML: %s", what)
}

// parseFramed reads raw, one element that the s2s layer framed and
// checked, as parseStanza does: the same tree and, for any input the
// framer accepts, the same errors (depth beyond maxDepth). On an error
// after the start tag it still returns the root.
//
// A from or to attribute of the stanza that is hints' address, as
// hintHolds checks it, is kept with an empty value and reported in
// matched (from, to).
func parseFramed(raw []byte, hints addrHints) (*node, [2]bool, error) {
	// Room for ordinary stanzas' declarations, attributes and depth
	// without growing.
	var (
		scopeBuf [4]framedScope
		attrBuf  [8]framedAttr
		stackBuf [8]*node
	)
	p := &framedParser{raw: raw, hints: hints}
	scope, attrs := scopeBuf[:0], attrBuf[:0]
	nodes := nodeArena{next: elementCount(raw)}
	p.skipSpace()
	if p.i >= len(raw) || raw[p.i] != '<' {
		return nil, p.matched, badRequest("Not an XML stanza: %s", "no start tag")
	}
	root, self, scope, attrs, err := p.startTag(1, scope, attrs, &nodes)
	if err != nil {
		return nil, p.matched, badRequest("Not an XML stanza: %v", err)
	}
	if self {
		return root, p.matched, p.rest()
	}
	stack := append(stackBuf[:0], root)
	for len(stack) > 0 {
		top := stack[len(stack)-1]
		if p.i >= len(raw) {
			return root, p.matched, badRequest("The <%s/> element is not closed", root.name.Local)
		}
		if raw[p.i] != '<' {
			if err := p.text(&top.text); err != nil {
				return root, p.matched, err
			}
			continue
		}
		rest := raw[p.i:]
		switch {
		case len(rest) > 1 && rest[1] == '/':
			if err := p.endTag(); err != nil {
				return root, p.matched, err
			}
			scope = popScope(scope, len(stack))
			stack = stack[:len(stack)-1]
		case len(rest) >= 9 && string(rest[:9]) == "<![CDATA[":
			end := bytes.Index(rest[9:], []byte("]]>"))
			if end < 0 {
				return root, p.matched, errFramed("unterminated CDATA section")
			}
			appendText(&top.text, rest[9:9+end])
			p.i += 9 + end + 3
		case len(rest) > 1 && (rest[1] == '!' || rest[1] == '?'):
			return root, p.matched, badRequest("The stanza holds a %s, which XMPP does not allow (RFC 6120 §11.1)", "comment, directive or processing instruction")
		default:
			if len(stack) >= maxDepth {
				return root, p.matched, badRequest("The stanza nests elements deeper than %d", maxDepth)
			}
			var n *node
			n, self, scope, attrs, err = p.startTag(len(stack)+1, scope, attrs, &nodes)
			if err != nil {
				return root, p.matched, errFramed(err.Error())
			}
			if top.kids == nil {
				top.kid0[0] = n
				top.kids = top.kid0[:1:1] // the next child moves them out
			} else {
				top.kids = append(top.kids, n)
			}
			if !self {
				stack = append(stack, n)
			}
		}
	}
	return root, p.matched, p.rest()
}

// rest checks that only whitespace follows the stanza.
func (p *framedParser) rest() error {
	p.skipSpace()
	if p.i < len(p.raw) {
		return badRequest("Data follows the stanza")
	}
	return nil
}

// skipSpace skips XML whitespace.
func (p *framedParser) skipSpace() {
	for p.i < len(p.raw) && isXMLSpace(p.raw[p.i]) {
		p.i++
	}
}

// isXMLSpace reports whether c is XML whitespace (S).
func isXMLSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// name reads a name up to whitespace, '=', '/', '>' and splits it at its
// colon as encoding/xml does.
func (p *framedParser) name() (prefix, local string, err error) {
	start := p.i
	for p.i < len(p.raw) {
		c := p.raw[p.i]
		if isXMLSpace(c) || c == '=' || c == '/' || c == '>' || c == '<' || c == '"' || c == '\'' {
			break
		}
		p.i++
	}
	b := p.raw[start:p.i]
	if len(b) == 0 {
		return "", "", errorString("a name is missing")
	}
	if c := bytes.Count(b, []byte(":")); c > 1 {
		return "", "", errorString("a name has more than one colon")
	}
	if k := bytes.IndexByte(b, ':'); k > 0 && k < len(b)-1 {
		return intern(b[:k]), intern(b[k+1:]), nil
	}
	return "", intern(b), nil
}

// errorString is a plain error.
type errorString string

func (e errorString) Error() string { return string(e) }

// startTag reads a start tag at depth (the stanza is 1), adds its
// namespace declarations to scope and returns its node, and scope and
// attrs (the scratch list of the tag's attributes) as they grew.
func (p *framedParser) startTag(depth int, scope []framedScope, attrs []framedAttr, nodes *nodeArena) (n *node, self bool, _ []framedScope, _ []framedAttr, err error) {
	p.i++ // '<'
	prefix, local, err := p.name()
	if err != nil {
		return nil, false, scope, attrs, err
	}
	attrs = attrs[:0]
	for {
		p.skipSpace()
		if p.i >= len(p.raw) {
			return nil, false, scope, attrs, errorString("the start tag is not closed")
		}
		c := p.raw[p.i]
		if c == '>' {
			p.i++
			break
		}
		if c == '/' {
			if p.i+1 >= len(p.raw) || p.raw[p.i+1] != '>' {
				return nil, false, scope, attrs, errorString("'/' in a start tag")
			}
			p.i += 2
			self = true
			break
		}
		ap, al, err := p.name()
		if err != nil {
			return nil, false, scope, attrs, err
		}
		p.skipSpace()
		if p.i >= len(p.raw) || p.raw[p.i] != '=' {
			return nil, false, scope, attrs, errorString("an attribute has no value")
		}
		p.i++
		p.skipSpace()
		raw, dec, err := p.attrValue()
		if err != nil {
			return nil, false, scope, attrs, err
		}
		v := ""
		if depth != 1 || ap != "" || (al != "from" && al != "to") || !p.hinted(al, raw, dec) {
			if v, err = attrString(raw, dec); err != nil {
				return nil, false, scope, attrs, err
			}
		}
		attrs = append(attrs, framedAttr{prefix: ap, local: al, value: v})
	}
	// Declarations first: they apply to the tag's own names
	// (encoding/xml's Token does the same).
	for _, a := range attrs {
		switch {
		case a.prefix == "xmlns":
			scope = append(scope, framedScope{prefix: a.local, uri: a.value, depth: depth})
		case a.prefix == "" && a.local == "xmlns":
			scope = append(scope, framedScope{prefix: "", uri: a.value, depth: depth})
		}
	}
	n = nodes.new()
	n.name = xml.Name{Space: resolve(scope, prefix, local, true), Local: local}
	if len(attrs) > 0 {
		n.attr = make([]xml.Attr, len(attrs))
		for k, a := range attrs {
			n.attr[k] = xml.Attr{Name: xml.Name{Space: resolve(scope, a.prefix, a.local, false), Local: a.local}, Value: a.value}
		}
	}
	if self {
		scope = popScope(scope, depth)
	}
	return n, self, scope, attrs, nil
}

// nodeArena hands out the nodes of one tree from chunks, so that a
// stanza's elements take one allocation. The tree keeps a whole chunk
// alive as long as it keeps one of its nodes.
type nodeArena struct {
	free []node
	next int // the size of the next chunk
}

// maxNodeChunk bounds a chunk: a stanza with more elements takes more.
const maxNodeChunk = 64

// elementCount is the number of start tags in raw, if it is well-formed
// restricted XML: every '<' starts a tag (or a CDATA section), and end
// tags start with "</". It is only the size of the first chunk.
func elementCount(raw []byte) int {
	return bytes.Count(raw, []byte("<")) - bytes.Count(raw, []byte("</"))
}

// new returns a zero node.
func (a *nodeArena) new() *node {
	if len(a.free) == 0 {
		a.free = make([]node, min(max(a.next, 1), maxNodeChunk))
		a.next = maxNodeChunk / 4
	}
	n := &a.free[0]
	a.free = a.free[1:]
	return n
}

// resolve returns the namespace of a name as encoding/xml's Decoder.Token
// gives it: prefixed names take the prefix's URI (xml is the XML
// namespace, xmlns stays xmlns), unprefixed elements the default
// namespace, unprefixed attributes none.
func resolve(scope []framedScope, prefix, local string, elem bool) string {
	switch {
	case prefix == "xmlns":
		return prefix
	case prefix == "" && !elem:
		return ""
	case prefix == "xml":
		return nsXML
	case prefix == "" && local == "xmlns":
		return ""
	}
	for k := len(scope) - 1; k >= 0; k-- {
		if scope[k].prefix == prefix {
			return scope[k].uri
		}
	}
	return prefix // unbound: encoding/xml leaves the prefix ("" for none)
}

// popScope drops the declarations of the element at depth.
func popScope(scope []framedScope, depth int) []framedScope {
	for len(scope) > 0 && scope[len(scope)-1].depth >= depth {
		scope = scope[:len(scope)-1]
	}
	return scope
}

// endTag reads an end tag (the framer matched it with its start tag).
func (p *framedParser) endTag() error {
	end := bytes.IndexByte(p.raw[p.i:], '>')
	if end < 0 {
		return errFramed("unterminated end tag")
	}
	p.i += end + 1
	return nil
}

// attrValue reads a quoted attribute value and decodes it.
func (p *framedParser) attrValue() (v []byte, dec bool, err error) {
	if p.i >= len(p.raw) || (p.raw[p.i] != '"' && p.raw[p.i] != '\'') {
		return nil, false, errorString("an attribute value is not quoted")
	}
	q := p.raw[p.i]
	p.i++
	end := bytes.IndexByte(p.raw[p.i:], q)
	if end < 0 {
		return nil, false, errorString("an attribute value is not closed")
	}
	v = p.raw[p.i : p.i+end]
	p.i += end + 1
	return v, needsDecoding(v), nil
}

// hinted reports whether the stanza's attribute local (from or to), with
// the value v as written (dec: holding references or carriage returns),
// is the first of its name and its hint's address, and records it.
func (p *framedParser) hinted(local string, v []byte, dec bool) bool {
	k, hint := 0, p.hints.from
	if local == "to" {
		k, hint = 1, p.hints.to
	}
	first := !p.seen[k]
	p.seen[k] = true
	if !first || dec || !p.hints.set || !hintHolds(hint, v) {
		return false
	}
	p.matched[k] = true
	return true
}

// attrString returns an attribute value as written, v, as a string, its
// references decoded when dec.
func attrString(v []byte, dec bool) (string, error) {
	if !dec {
		return intern(v), nil
	}
	var b strings.Builder
	if err := decodeText(&b, v); err != nil {
		return "", err
	}
	return b.String(), nil
}

// text reads character data up to the next '<' into b.
func (p *framedParser) text(b *strings.Builder) error {
	end := bytes.IndexByte(p.raw[p.i:], '<')
	if end < 0 {
		end = len(p.raw) - p.i
	}
	v := p.raw[p.i : p.i+end]
	p.i += end
	if bytes.Contains(v, []byte("]]>")) {
		// As encoding/xml: XML 1.0 §2.4 keeps it for the end of CDATA.
		return errFramed("unescaped ]]> not in CDATA section")
	}
	if !needsDecoding(v) {
		b.Write(v)
		return nil
	}
	return decodeText(b, v)
}

// needsDecoding reports whether v holds a reference or a carriage return.
func needsDecoding(v []byte) bool {
	for _, c := range v {
		if c == '&' || c == '\r' {
			return true
		}
	}
	return false
}

// appendText appends the contents of a CDATA section: no references, but
// line ends handled as encoding/xml handles them.
func appendText(b *strings.Builder, v []byte) {
	if !needsDecoding(v) {
		b.Write(v)
		return
	}
	var prev byte
	for _, c := range v {
		switch {
		case c == '\r':
			b.WriteByte('\n')
		case c == '\n' && prev == '\r':
		default:
			b.WriteByte(c)
		}
		prev = c
	}
}

// decodeText appends v with its references decoded and, as encoding/xml
// does, a literal "\r\n" or "\r" turned into "\n" (a reference breaks a
// pair: "\r&#10;" is two line feeds).
func decodeText(b *strings.Builder, v []byte) error {
	var prev byte
	for k := 0; k < len(v); {
		c := v[k]
		if c == '&' {
			end := bytes.IndexByte(v[k:], ';')
			if end < 0 {
				return errFramed("a reference has no ';'")
			}
			r, ok := reference(v[k+1 : k+end])
			if !ok {
				return errFramed("invalid character entity " + strconv.Quote(string(v[k:k+end+1])))
			}
			b.WriteRune(r)
			k += end + 1
			prev = 0
			continue
		}
		switch {
		case c == '\r':
			b.WriteByte('\n')
		case c == '\n' && prev == '\r':
		default:
			b.WriteByte(c)
		}
		prev = c
		k++
	}
	return nil
}

// reference returns the character a reference (without '&' and ';')
// stands for: one of the five predefined entities or a character
// reference to a character XML allows.
func reference(s []byte) (rune, bool) {
	switch string(s) {
	case "lt":
		return '<', true
	case "gt":
		return '>', true
	case "amp":
		return '&', true
	case "apos":
		return '\'', true
	case "quot":
		return '"', true
	}
	if len(s) < 2 || s[0] != '#' {
		return 0, false
	}
	base, digits := 10, s[1:]
	if digits[0] == 'x' {
		base, digits = 16, digits[1:]
	}
	n, err := strconv.ParseUint(string(digits), base, 32)
	if err != nil || n > utf8.MaxRune || !xmlChar(rune(n)) {
		return 0, false
	}
	return rune(n), true
}

// intern returns b as a string, without allocating for the names and
// values that every stanza repeats.
func intern(b []byte) string {
	switch string(b) {
	case "message":
		return "message"
	case "presence":
		return "presence"
	case "iq":
		return "iq"
	case "body":
		return "body"
	case "subject":
		return "subject"
	case "thread":
		return "thread"
	case "show":
		return "show"
	case "status":
		return "status"
	case "priority":
		return "priority"
	case "from":
		return "from"
	case "to":
		return "to"
	case "id":
		return "id"
	case "type":
		return "type"
	case "xmlns":
		return "xmlns"
	case "xml":
		return "xml"
	case "lang":
		return "lang"
	case "chat":
		return "chat"
	case "normal":
		return "normal"
	case "unavailable":
		return "unavailable"
	case "active", "composing", "paused", "inactive", "gone", "request", "received":
		return string(b) // short: a small allocation at most
	case nsServer:
		return nsServer
	case nsChatStates:
		return nsChatStates
	case nsReceipts:
		return nsReceipts
	case nsDelay:
		return nsDelay
	}
	return string(b)
}
