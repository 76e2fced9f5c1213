package wire_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/xmppfed/xmppfed/internal/wire"
)

// Limits of the differential fuzz test: small, so that inputs reach them.
const (
	diffMaxBytes = 256
	diffMaxDepth = 4
	diffMaxAttrs = 8 // the test's stream header has 8
)

// Namespace names fixed by Namespaces in XML 1.0 §3.
const (
	nsXML   = "http://www.w3.org/XML/1998/namespace"
	nsXMLNS = "http://www.w3.org/2000/xmlns/"
)

// fastOne is the fast path: wire.Reader after the test's stream header,
// with the differential limits, frames the first top-level element of
// data; then, as s2s.ParseStanza does, what follows it must be whitespace
// only (XML whitespace here: ParseStanza's bytes.TrimSpace also takes
// Unicode spaces). It returns the element's name.
func fastOne(data []byte) (xml.Name, error) {
	src := bytes.NewReader(data)
	r := wire.NewReader(io.MultiReader(strings.NewReader(hdr), src),
		wire.Limits{MaxStanzaBytes: diffMaxBytes, MaxDepth: diffMaxDepth, MaxAttrs: diffMaxAttrs})
	if _, err := r.ReadHeader(); err != nil {
		return xml.Name{}, err
	}
	e, err := r.Next()
	if err != nil {
		return xml.Name{}, err
	}
	// The header was read whole before data, so what is left of data is
	// what the Reader holds unread plus what it has not read yet.
	if rest := data[len(data)-r.Buffered()-src.Len():]; len(bytes.Trim(rest, " \t\r\n")) > 0 {
		return xml.Name{}, errors.New("something after the element")
	}
	return e.Name, nil
}

// slowOne is the slow path: encoding/xml's RawToken with every check
// encoding/xml leaves out added here, for the same restrictions — XML 1.0
// well-formedness and Namespaces in XML 1.0 (matching tags, unique
// attributes, declared prefixes, reserved prefixes and names), RFC 6120
// §11.1 restricted XML (no comment, processing instruction, DTD or other
// directive, no entity but the five predefined), the size, depth and
// attribute limits, and exactly one element with nothing but whitespace
// around it. The
// stream header's declarations (hdr) are in scope. It returns the
// element's namespace-resolved name.
func slowOne(data []byte) (xml.Name, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	scopes := []map[string]string{{"": wire.NSServer, "stream": wire.NSStreams, "db": "jabber:server:dialback", "xml": nsXML}}
	lookup := func(prefix string) (string, bool) {
		for i := len(scopes) - 1; i >= 0; i-- {
			if uri, ok := scopes[i][prefix]; ok {
				return uri, true
			}
		}
		return "", false
	}
	var (
		open     []xml.Name // raw names of the open elements
		root     xml.Name
		roots    int
		rootFrom int64
	)
	for range len(data) + 2 {
		from := d.InputOffset()
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return xml.Name{}, err
		}
		raw := data[from:d.InputOffset()]
		switch t := tok.(type) {
		case xml.StartElement:
			if err := checkCharRefs(raw); err != nil {
				return xml.Name{}, err
			}
			if err := checkAttrSpacing(raw); err != nil {
				return xml.Name{}, err
			}
			if len(open) == 0 {
				roots++
				if roots > 1 {
					return xml.Name{}, errors.New("a second top-level element")
				}
				rootFrom = from
			}
			if len(open)+1 > diffMaxDepth {
				return xml.Name{}, errors.New("too deep")
			}
			if err := checkQName(t.Name); err != nil {
				return xml.Name{}, err
			}
			if len(t.Attr) > diffMaxAttrs {
				return xml.Name{}, errors.New("too many attributes")
			}
			scope := map[string]string{}
			for _, a := range t.Attr {
				if err := checkQName(a.Name); err != nil {
					return xml.Name{}, err
				}
				switch {
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					if a.Value == nsXML || a.Value == nsXMLNS {
						return xml.Name{}, errors.New("reserved namespace as the default")
					}
					scope[""] = a.Value
				case a.Name.Space == "xmlns":
					switch {
					case a.Value == "":
						return xml.Name{}, errors.New("prefix undeclared (Namespaces in XML 1.0)")
					case a.Name.Local == "xmlns":
						return xml.Name{}, errors.New("xmlns prefix declared")
					case (a.Name.Local == "xml") != (a.Value == nsXML), a.Value == nsXMLNS:
						return xml.Name{}, errors.New("reserved prefix or namespace bound")
					}
					scope[a.Name.Local] = a.Value
				}
			}
			scopes = append(scopes, scope)
			decls := 0
			for _, sc := range scopes[1:] { // the header's are not counted
				decls += len(sc)
			}
			if decls > diffMaxAttrs {
				return xml.Name{}, errors.New("too many namespace declarations in scope")
			}
			uri, ok := lookup(t.Name.Space)
			if !ok {
				return xml.Name{}, errors.New("undeclared element prefix")
			}
			seen := map[xml.Name]bool{}
			for _, a := range t.Attr {
				if seen[a.Name] {
					return xml.Name{}, errors.New("repeated attribute")
				}
				seen[a.Name] = true
				if a.Name.Space == "" || a.Name.Space == "xmlns" {
					continue
				}
				u, ok := lookup(a.Name.Space)
				if !ok {
					return xml.Name{}, errors.New("undeclared attribute prefix")
				}
				exp := xml.Name{Space: "{" + u, Local: a.Name.Local}
				if seen[exp] {
					return xml.Name{}, errors.New("attributes with the same expanded name")
				}
				seen[exp] = true
			}
			if len(open) == 0 {
				root = xml.Name{Space: uri, Local: t.Name.Local}
			}
			open = append(open, t.Name)
		case xml.EndElement:
			if len(open) == 0 || open[len(open)-1] != t.Name {
				return xml.Name{}, errors.New("end tag does not match")
			}
			open = open[:len(open)-1]
			scopes = scopes[:len(scopes)-1]
			if len(open) == 0 && d.InputOffset()-rootFrom > diffMaxBytes {
				return xml.Name{}, errors.New("too big")
			}
		case xml.CharData:
			cdata := bytes.HasPrefix(raw, []byte("<![CDATA["))
			switch {
			case len(open) == 0 && (cdata || len(bytes.Trim(raw, " \t\r\n")) > 0):
				return xml.Name{}, errors.New("text or CDATA outside the element")
			case !cdata && bytes.Contains(raw, []byte("]]>")):
				return xml.Name{}, errors.New("]]> in text")
			case !cdata:
				if err := checkCharRefs(raw); err != nil {
					return xml.Name{}, err
				}
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
			return xml.Name{}, errors.New("restricted XML")
		}
	}
	if len(open) > 0 || roots != 1 {
		return xml.Name{}, errors.New("not exactly one complete element")
	}
	return root, nil
}

// checkCharRefs checks that every character reference in raw (text, or
// a start tag's attribute values) names an XML Char (XML 1.0 §4.1, §2.2):
// encoding/xml lets &#xD800; through as U+FFFD. The references' syntax is
// encoding/xml's to check.
func checkCharRefs(raw []byte) error {
	for {
		i := bytes.Index(raw, []byte("&#"))
		if i < 0 {
			return nil
		}
		raw = raw[i+2:]
		end := bytes.IndexByte(raw, ';')
		if end < 0 {
			return nil
		}
		ref, base := string(raw[:end]), 10
		if strings.HasPrefix(ref, "x") {
			ref, base = ref[1:], 16
		}
		n, err := strconv.ParseUint(ref, base, 32)
		if err != nil {
			continue // not a reference encoding/xml accepts either
		}
		if c := rune(n); !(c == 0x9 || c == 0xA || c == 0xD || c >= 0x20 && c <= 0xD7FF ||
			c >= 0xE000 && c <= 0xFFFD || c >= 0x10000 && c <= 0x10FFFF) {
			return errors.New("character reference to a non-Char")
		}
	}
}

// checkQName checks a name as RawToken split it (Space is the prefix) for
// Namespaces in XML 1.0 §4: at most one colon, neither first nor last.
func checkQName(n xml.Name) error {
	q := n.Local
	if n.Space != "" {
		q = n.Space + ":" + n.Local
	}
	if c := strings.Count(q, ":"); c > 1 || c == 1 && (q[0] == ':' || q[len(q)-1] == ':') {
		return errors.New("malformed qualified name")
	}
	// encoding/xml checked q as an XML Name, so its first character may
	// start a name; the local part after a colon must too (an NCName).
	if _, local, ok := strings.Cut(q, ":"); ok {
		if c, _ := utf8.DecodeRuneInString(local); c >= '0' && c <= '9' || c == '-' || c == '.' ||
			c == 0xB7 || c >= 0x300 && c <= 0x36F || c == 0x203F || c == 0x2040 {
			return errors.New("local part does not start a name")
		}
	}
	return nil
}

// FuzzDifferential checks that the fast framer and a slow path built on
// encoding/xml accept and reject the same inputs, each meant to hold one
// stanza after a stream header, and agree on the name of what they accept.
func FuzzDifferential(f *testing.F) {
	f.Add([]byte(stanza200))
	f.Fuzz(func(t *testing.T, data []byte) {
		fn, ferr := fastOne(data)
		sn, serr := slowOne(data)
		switch {
		case ferr == nil && serr != nil:
			t.Fatalf("fast path accepts, slow path rejects (%v): %q", serr, data)
		case ferr != nil && serr == nil:
			t.Fatalf("fast path rejects (%v), slow path accepts: %q", ferr, data)
		case ferr == nil && fn != sn:
			t.Fatalf("fast path reads %v, slow path %v: %q", fn, sn, data)
		}
	})
}

// checkAttrSpacing adds what encoding/xml leaves out of XML 1.0 §3.1
// (production [40]: S before each attribute): in the raw start tag, a
// closing quote of an attribute value is followed by whitespace, '/' or
// '>'.
func checkAttrSpacing(raw []byte) error {
	var quote byte
	for i, c := range raw {
		switch {
		case quote != 0:
			if c != quote {
				continue
			}
			quote = 0
			if i+1 < len(raw) {
				switch raw[i+1] {
				case ' ', '\t', '\r', '\n', '/', '>':
				default:
					return errors.New("no whitespace between attributes")
				}
			}
		case c == '\'' || c == '"':
			quote = c
		}
	}
	return nil
}
