package wire

import (
	"bytes"
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"mellium.im/xmpp/stream"
)

// This file holds the byte-level scanner: names, start and end tags,
// attribute values, character data, references and CDATA. It implements
// XML 1.0 well-formedness plus Namespaces in XML for the RFC 6120 §11
// subset, reporting everything else as restricted-xml.

// isChar reports whether c is an XML 1.0 Char (XML 1.0 §2.2).
func isChar(c rune) bool {
	return c == 0x9 || c == 0xA || c == 0xD ||
		(c >= 0x20 && c <= 0xD7FF) ||
		(c >= 0xE000 && c <= 0xFFFD) ||
		(c >= 0x10000 && c <= 0x10FFFF)
}

func isNameStartASCII(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_'
}

func isNameASCII(c byte) bool {
	return isNameStartASCII(c) || '0' <= c && c <= '9' || c == '-' || c == '.'
}

// scanName reads a QName at r.pos (Namespaces in XML §4). Non-ASCII names
// are accepted here and checked in full later (checkNonASCIINames).
func (r *Reader) scanName() (span, error) {
	n := span{start: r.pos, colon: r.pos - 1}
	for {
		if r.pos >= len(r.buf) {
			if err := r.need(1); err != nil {
				return n, err
			}
		}
		c := r.buf[r.pos]
		switch {
		case isNameASCII(c):
		case c >= 0x80:
			r.nonASCII = true
		case c == ':':
			if n.colon >= n.start {
				return n, r.fail(stream.NotWellFormed, "name with two colons")
			}
			n.colon = r.pos
		default:
			n.end = r.pos
			switch {
			case n.end == n.start:
				return n, r.fail(stream.NotWellFormed, "expected a name, found %q", c)
			case !isNameStartASCII(r.buf[n.start]) && r.buf[n.start] < 0x80:
				return n, r.fail(stream.NotWellFormed, "name %q starts with an invalid character", r.buf[n.start:n.end])
			case n.colon == n.end-1 || n.colon == n.start:
				return n, r.fail(stream.NotWellFormed, "malformed qualified name %q", r.buf[n.start:n.end])
			}
			if n.colon >= n.start && r.buf[n.colon+1] < 0x80 && !isNameStartASCII(r.buf[n.colon+1]) {
				return n, r.fail(stream.NotWellFormed, "malformed qualified name %q", r.buf[n.start:n.end])
			}
			return n, nil
		}
		r.pos++
	}
}

// checkNonASCIINames validates a unit containing non-ASCII names with
// encoding/xml, whose name tables are the reference for what is re-parsed
// downstream. Such names are rare, so the cost does not matter.
func (r *Reader) checkNonASCIINames(raw []byte) error {
	d := xml.NewDecoder(bytes.NewReader(raw))
	for range len(raw) + 1 {
		_, err := d.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if se, ok := err.(*xml.SyntaxError); ok && strings.Contains(se.Msg, "unexpected EOF") {
				return nil // the stream header is not closed, which is fine
			}
			return r.fail(stream.NotWellFormed, "invalid name: %v", err)
		}
	}
	return nil
}

func (r *Reader) expect(c byte, what string) error {
	got, err := r.peek()
	if err != nil {
		return err
	}
	if got != c {
		return r.fail(stream.NotWellFormed, "expected %q %s, found %q", c, what, got)
	}
	r.pos++
	return nil
}

// startTag reads a start tag after its '<'; depth is 0 for the stream
// header, 1 for a top-level element. It records attributes in r.attrs and
// namespace declarations in r.binds, and (depth > 0) checks that every
// prefix is declared (Namespaces in XML §5).
func (r *Reader) startTag(depth int) (name span, self bool, err error) {
	name, err = r.scanName()
	if err != nil {
		return name, false, err
	}
	r.attrs = r.attrs[:0]
	for {
		sp, err := r.skipSpace()
		if err != nil {
			return name, false, err
		}
		c := r.buf[r.pos]
		if c == '>' {
			r.pos++
			break
		}
		if c == '/' {
			r.pos++
			if err := r.expect('>', "after '/' in a tag"); err != nil {
				return name, false, err
			}
			self = true
			break
		}
		if !sp {
			return name, false, r.fail(stream.NotWellFormed, "missing whitespace before attribute in <%s>", r.buf[name.start:name.end])
		}
		an, err := r.scanName()
		if err != nil {
			return name, false, err
		}
		if _, err := r.skipSpace(); err != nil {
			return name, false, err
		}
		if err := r.expect('=', "after attribute name"); err != nil {
			return name, false, err
		}
		if _, err := r.skipSpace(); err != nil {
			return name, false, err
		}
		vs, ve, dec, err := r.attrValue()
		if err != nil {
			return name, false, err
		}
		aname := r.buf[an.start:an.end]
		if len(r.attrs) >= r.lim.MaxAttrs {
			return name, false, r.fail(stream.PolicyViolation, "more than %d attributes in <%s>", r.lim.MaxAttrs, r.buf[name.start:name.end])
		}
		for _, o := range r.attrs {
			if bytes.Equal(r.buf[o.name.start:o.name.end], aname) {
				return name, false, r.fail(stream.NotWellFormed, "duplicate attribute %q", aname) // XML 1.0 §3.1
			}
		}
		a := attrSpan{name: an, vStart: vs, vEnd: ve, needDecode: dec}
		r.attrs = append(r.attrs, a)
		switch {
		case an.colon < an.start && string(aname) == "xmlns":
			// Namespaces in XML 1.0 §3: neither reserved namespace name
			// may be the default namespace.
			if v := r.declValue(vs, ve, dec); string(v) == NSXML || string(v) == nsXMLNS {
				return name, false, r.fail(stream.NotWellFormed, "reserved namespace %q declared as the default namespace", v)
			}
			if err := r.checkBinds(name); err != nil {
				return name, false, err
			}
			r.binds = append(r.binds, binding{depth: depth, pStart: an.start, pEnd: an.start, uStart: vs, uEnd: ve, needDecode: dec})
		case an.colon >= an.start && string(r.buf[an.start:an.colon]) == "xmlns":
			p := r.buf[an.colon+1 : an.end]
			v := r.declValue(vs, ve, dec)
			switch {
			case string(p) == "xmlns":
				return name, false, r.fail(stream.NotWellFormed, "the xmlns prefix cannot be declared")
			case vs == ve:
				// Namespaces in XML 1.0 §3: prefixes cannot be undeclared.
				return name, false, r.fail(stream.NotWellFormed, "empty namespace name for prefix %q", p)
			case string(p) == "xml" && string(v) != NSXML:
				return name, false, r.fail(stream.NotWellFormed, "the xml prefix bound to another namespace")
			case string(p) != "xml" && string(v) == NSXML:
				// Namespaces in XML 1.0 §3: the xml namespace name is
				// bound to the xml prefix only.
				return name, false, r.fail(stream.NotWellFormed, "prefix %q bound to the xml namespace", p)
			case string(v) == nsXMLNS:
				// Namespaces in XML 1.0 §3: the xmlns namespace name is
				// never declared.
				return name, false, r.fail(stream.NotWellFormed, "prefix %q bound to the xmlns namespace", p)
			}
			if err := r.checkBinds(name); err != nil {
				return name, false, err
			}
			r.binds = append(r.binds, binding{depth: depth, pStart: an.colon + 1, pEnd: an.end, uStart: vs, uEnd: ve, needDecode: dec})
		}
	}
	if depth == 0 {
		return name, self, nil
	}
	if _, err := r.lookup(name, true); err != nil {
		return name, false, err
	}
	// Each prefixed attribute's namespace name, resolved once (the check
	// below compares them pairwise).
	r.auris = r.auris[:0]
	for _, a := range r.attrs {
		if a.name.colon < a.name.start || a.isXMLNS(r.buf) {
			r.auris = append(r.auris, nil)
			continue
		}
		if _, err := r.lookup(a.name, false); err != nil {
			return name, false, err
		}
		r.auris = append(r.auris, r.attrURI(a.name))
	}
	for i, a := range r.attrs {
		if r.auris[i] == nil {
			continue
		}
		// Namespaces in XML 1.0 §6.3: no two attributes with the same
		// expanded name (local name and namespace name). Only prefixed
		// attributes have a namespace, and XML 1.0 §3.1 already refused
		// two with the same qualified name.
		local := r.buf[a.name.colon+1 : a.name.end]
		for j, o := range r.attrs[:i] {
			if r.auris[j] == nil || !bytes.Equal(r.buf[o.name.colon+1:o.name.end], local) {
				continue
			}
			if bytes.Equal(r.auris[i], r.auris[j]) {
				return name, false, r.fail(stream.NotWellFormed, "attributes %q and %q have the same expanded name", r.buf[o.name.start:o.name.end], r.buf[a.name.start:a.name.end])
			}
		}
	}
	// The names point into r.buf, which goes back to a pool when the
	// stream idles (Shrink): keep no reference to it.
	clear(r.auris)
	return name, self, nil
}

// nsXMLNS is the namespace name of the xmlns prefix, which is never
// declared (Namespaces in XML 1.0 §3).
const nsXMLNS = "http://www.w3.org/2000/xmlns/"

// declValue returns a namespace declaration's value, decoded when it holds
// references (rare: it allocates only then).
func (r *Reader) declValue(vs, ve int, dec bool) []byte {
	if dec {
		return []byte(decodeAttr(r.buf[vs:ve]))
	}
	return r.buf[vs:ve]
}

// attrURI returns the namespace name of the prefixed attribute name n,
// whose prefix is known to be declared.
func (r *Reader) attrURI(n span) []byte {
	if string(r.buf[n.start:n.colon]) == "xml" {
		return []byte(NSXML)
	}
	b, err := r.lookup(n, false)
	switch {
	case err != nil || b == nil:
		return nil
	case b.header:
		return []byte(b.uri)
	}
	return r.declValue(b.uStart, b.uEnd, b.needDecode)
}

// checkBinds refuses one more namespace declaration, in the start tag of
// the element named name, when MaxAttrs of them are in scope already.
func (r *Reader) checkBinds(name span) error {
	if len(r.binds) >= r.lim.MaxAttrs {
		return r.fail(stream.PolicyViolation, "more than %d namespace declarations in scope at <%s>", r.lim.MaxAttrs, r.buf[name.start:name.end])
	}
	return nil
}

func (r *Reader) popBinds(depth int) {
	i := len(r.binds)
	for i > 0 && r.binds[i-1].depth >= depth {
		i--
	}
	r.binds = r.binds[:i]
}

// lookup resolves the prefix of n. It returns nil for "no namespace" and
// for the xml prefix; it marks header bindings as used by the element.
func (r *Reader) lookup(n span, elem bool) (*binding, error) {
	if n.colon < n.start {
		if !elem {
			return nil, nil // unprefixed attributes are in no namespace
		}
		for i := len(r.binds) - 1; i >= 0; i-- {
			if b := &r.binds[i]; b.pStart == b.pEnd {
				return b, nil
			}
		}
		for i := range r.hdr {
			if b := &r.hdr[i]; b.prefix == "" {
				r.usedDefault = true
				return b, nil
			}
		}
		return nil, nil
	}
	p := r.buf[n.start:n.colon]
	switch string(p) {
	case "xml":
		return nil, nil
	case "xmlns":
		return nil, r.fail(stream.NotWellFormed, "element with the reserved xmlns prefix")
	}
	for i := len(r.binds) - 1; i >= 0; i-- {
		if b := &r.binds[i]; b.pStart != b.pEnd && bytes.Equal(r.buf[b.pStart:b.pEnd], p) {
			return b, nil
		}
	}
	for i := range r.hdr {
		if b := &r.hdr[i]; b.prefix != "" && b.prefix == string(p) {
			b.used = true
			return b, nil
		}
	}
	return nil, r.fail(stream.NotWellFormed, "undeclared namespace prefix %q", p) // Namespaces in XML §5
}

// rootURI returns the namespace name of a root element or attribute name,
// as a substring of tag (the root start tag starting at offset start) where
// possible.
func (r *Reader) rootURI(n span, elem bool, tag string, start int) string {
	if n.colon >= n.start && string(r.buf[n.start:n.colon]) == "xml" {
		return NSXML
	}
	b, _ := r.lookup(n, elem)
	switch {
	case b == nil:
		return ""
	case b.header:
		return b.uri
	case b.needDecode:
		return decodeAttr(r.buf[b.uStart:b.uEnd])
	}
	return tag[b.uStart-start : b.uEnd-start]
}

func (r *Reader) attrString(vs, ve int, dec bool) string {
	if dec {
		return decodeAttr(r.buf[vs:ve])
	}
	return string(r.buf[vs:ve])
}

// attrValue reads a quoted attribute value at r.pos and returns its raw
// span; dec reports whether it contains references or CRs to decode.
func (r *Reader) attrValue() (vs, ve int, dec bool, err error) {
	q, err := r.peek()
	if err != nil {
		return 0, 0, false, err
	}
	if q != '"' && q != '\'' {
		return 0, 0, false, r.fail(stream.NotWellFormed, "unquoted attribute value")
	}
	r.pos++
	vs = r.pos
	dec, err = r.text(q)
	if err != nil {
		return 0, 0, false, err
	}
	ve = r.pos
	r.pos++ // closing quote
	return vs, ve, dec, nil
}

// text scans character data up to '<' (quote == 0, not consumed) or up to
// the closing quote of an attribute value (not consumed). It validates
// characters and references; dec reports '&' or '\r' seen.
func (r *Reader) text(quote byte) (dec bool, err error) {
	for {
		if r.pos >= len(r.buf) {
			if err := r.need(1); err != nil {
				return dec, err
			}
		}
		buf := r.buf
		i := r.pos
		for i < len(buf) {
			c := buf[i]
			if c < 0x20 || c >= 0x80 || c == '<' || c == '&' || c == '>' || c == quote || c == ']' {
				break
			}
			i++
		}
		r.pos = i
		if i == len(buf) {
			continue
		}
		c := buf[i]
		if quote != 0 && c == quote {
			return dec, nil
		}
		// In character data (quote 0) a NUL must not be taken for the
		// end of the text: it goes to char, which refuses it.
		switch c {
		case '<':
			if quote != 0 {
				return dec, r.fail(stream.NotWellFormed, "'<' in attribute value") // XML 1.0 §3.1
			}
			return dec, nil
		case '&':
			dec = true
			if err := r.reference(); err != nil {
				return dec, err
			}
		case ']':
			if quote == 0 {
				if ok, err := r.hasPrefix("]]>"); err != nil {
					return dec, err
				} else if ok {
					return dec, r.fail(stream.NotWellFormed, "']]>' in character data") // XML 1.0 §2.4
				}
			}
			r.pos++
		case '>':
			r.pos++
		case '\r':
			dec = true
			r.pos++
		default:
			if err := r.char(); err != nil {
				return dec, err
			}
		}
	}
}

// char validates and consumes one character at r.pos (XML 1.0 §2.2, RFC
// 6120 §11.6: UTF-8 only).
func (r *Reader) char() error {
	c := r.buf[r.pos]
	if c < 0x80 {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return r.fail(stream.NotWellFormed, "control character %#x", c)
		}
		r.pos++
		return nil
	}
	for !utf8.FullRune(r.buf[r.pos:]) {
		if err := r.need(len(r.buf) - r.pos + 1); err != nil {
			return err
		}
	}
	ch, size := utf8.DecodeRune(r.buf[r.pos:])
	if ch == utf8.RuneError && size <= 1 {
		return r.fail(stream.NotWellFormed, "invalid UTF-8")
	}
	if !isChar(ch) {
		return r.fail(stream.NotWellFormed, "character %U not allowed in XML", ch)
	}
	r.pos += size
	return nil
}

// reference checks the entity or character reference at r.pos ('&').
// Only the five predefined entities are allowed (RFC 6120 §11.1).
func (r *Reader) reference() error {
	i := 1
	for {
		if r.pos+i >= len(r.buf) {
			if err := r.need(i + 1); err != nil {
				return err
			}
		}
		c := r.buf[r.pos+i]
		if c == ';' {
			break
		}
		if !isNameASCII(c) && c < 0x80 && c != '#' && c != ':' {
			return r.fail(stream.NotWellFormed, "'&' not starting a reference")
		}
		i++
		if i > maxEntityLen {
			return r.fail(stream.NotWellFormed, "unterminated reference")
		}
	}
	ref := r.buf[r.pos+1 : r.pos+i]
	r.pos += i + 1
	if len(ref) > 0 && ref[0] == '#' {
		if _, ok := charRef(ref[1:]); !ok {
			return r.fail(stream.NotWellFormed, "invalid character reference &%s;", ref)
		}
		return nil
	}
	switch string(ref) {
	case "lt", "gt", "amp", "apos", "quot":
		return nil
	}
	if len(ref) == 0 || !(isNameStartASCII(ref[0]) || ref[0] >= 0x80) {
		return r.fail(stream.NotWellFormed, "invalid reference &%s;", ref)
	}
	for _, c := range ref {
		if !isNameASCII(c) && c < 0x80 && c != ':' {
			return r.fail(stream.NotWellFormed, "invalid reference &%s;", ref)
		}
	}
	return r.fail(stream.RestrictedXML, "entity reference &%s;", ref) // RFC 6120 §11.1
}

// charRef parses the digits of a character reference (after '#').
func charRef(s []byte) (rune, bool) {
	base := 10
	if len(s) > 0 && s[0] == 'x' {
		base, s = 16, s[1:]
	}
	if len(s) == 0 {
		return 0, false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || base == 16 && ('a' <= c && c <= 'f' || 'A' <= c && c <= 'F')) {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(string(s), base, 32)
	if err != nil || !isChar(rune(n)) {
		return 0, false
	}
	return rune(n), true
}

// content reads the content of the element opened in r.open, up to and
// including its end tag.
func (r *Reader) content() error {
	for {
		if _, err := r.text(0); err != nil {
			return err
		}
		if err := r.need(2); err != nil {
			return err
		}
		switch r.buf[r.pos+1] {
		case '/':
			r.pos += 2
			n, err := r.scanName()
			if err != nil {
				return err
			}
			if err := r.endTagRest(); err != nil {
				return err
			}
			top := r.open[len(r.open)-1]
			if !bytes.Equal(r.buf[n.start:n.end], r.buf[top.start:top.end]) {
				return r.fail(stream.NotWellFormed, "end tag </%s> does not match <%s>", r.buf[n.start:n.end], r.buf[top.start:top.end])
			}
			r.popBinds(len(r.open))
			r.open = r.open[:len(r.open)-1]
			if len(r.open) == 0 {
				return nil
			}
		case '?':
			return r.fail(stream.RestrictedXML, "processing instruction") // RFC 6120 §11.1
		case '!':
			ok, err := r.hasPrefix("<![CDATA[")
			if err != nil {
				return err
			}
			if !ok {
				return r.markup()
			}
			r.pos += len("<![CDATA[")
			if err := r.cdata(); err != nil {
				return err
			}
		default:
			r.pos++
			depth := len(r.open) + 1
			if depth > r.lim.MaxDepth {
				return r.fail(stream.PolicyViolation, "elements nested deeper than %d", r.lim.MaxDepth)
			}
			n, self, err := r.startTag(depth)
			if err != nil {
				return err
			}
			if self {
				r.popBinds(depth)
			} else {
				r.open = append(r.open, n)
			}
		}
	}
}

// cdata consumes a CDATA section's content and its "]]>".
func (r *Reader) cdata() error {
	for {
		if _, err := r.peek(); err != nil {
			return err
		}
		if r.buf[r.pos] == ']' {
			ok, err := r.hasPrefix("]]>")
			if err != nil {
				return err
			}
			if ok {
				r.pos += 3
				return nil
			}
			r.pos++
			continue
		}
		if err := r.char(); err != nil {
			return err
		}
	}
}

func (r *Reader) endTagRest() error {
	if _, err := r.skipSpace(); err != nil {
		return err
	}
	return r.expect('>', "to close the end tag")
}

// decodeAttr resolves references in a validated attribute value and
// normalises line ends (XML 1.0 §2.11) as encoding/xml does.
func decodeAttr(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch c {
		case '\r':
			sb.WriteByte('\n')
			if i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
		case '&':
			j := bytes.IndexByte(b[i:], ';')
			if j < 0 {
				sb.Write(b[i:])
				return sb.String()
			}
			ref := b[i+1 : i+j]
			i += j
			switch string(ref) {
			case "lt":
				sb.WriteByte('<')
			case "gt":
				sb.WriteByte('>')
			case "amp":
				sb.WriteByte('&')
			case "apos":
				sb.WriteByte('\'')
			case "quot":
				sb.WriteByte('"')
			default:
				if len(ref) > 0 && ref[0] == '#' {
					if ch, ok := charRef(ref[1:]); ok {
						sb.WriteRune(ch)
					}
				}
			}
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}
