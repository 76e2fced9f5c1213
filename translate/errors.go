package translate

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// FieldError is the error Encode returns for a value it cannot encode:
// it names the type and the field ("Message", "Body").
type FieldError struct {
	Type   string // "Message", "Presence", "Subscription" or "Probe"
	Field  string // the field, as named in the Go type
	Reason string // what is wrong with it
}

// Error returns "translate: Message.Body: <reason>".
func (e *FieldError) Error() string {
	return "translate: " + e.Type + "." + e.Field + ": " + e.Reason
}

// stanzaErr returns a stanza error with an English text (RFC 6120 §8.3.2:
// the text is for people, in the language its xml:lang says).
func stanzaErr(typ stanza.ErrorType, cond stanza.Condition, format string, args ...any) stanza.Error {
	return stanza.Error{Type: typ, Condition: cond, Text: map[string]string{"en": fmt.Sprintf(format, args...)}}
}

// badRequest is bad-request, type modify (RFC 6120 §8.3.3.1).
func badRequest(format string, args ...any) stanza.Error {
	return stanzaErr(stanza.Modify, stanza.BadRequest, format, args...)
}

// notImplemented is feature-not-implemented, type cancel (RFC 6120
// §8.3.3.3).
func notImplemented(format string, args ...any) stanza.Error {
	return stanzaErr(stanza.Cancel, stanza.FeatureNotImplemented, format, args...)
}

// unavailable is service-unavailable, type cancel (RFC 6120 §8.3.3.19).
func unavailable(format string, args ...any) stanza.Error {
	return stanzaErr(stanza.Cancel, stanza.ServiceUnavailable, format, args...)
}

// userRefused is the text for every refusal about the local user, the
// same as package policy's, so that a remote sender cannot tell a missing
// user from one without access (RFC 6121 §8.5.2.1).
const userRefused = "The recipient cannot use XMPP federation"

// StanzaError returns the stanza error that reports err to a remote
// sender: a stanza.Error as it is; a value with a StanzaError() method
// (such as *policy.Denial) through it; ErrUnknownUser ->
// service-unavailable; ErrOffline -> recipient-unavailable; ErrTooLarge
// -> policy-violation; ErrMalformedAddress -> jid-malformed;
// context errors -> remote-server-timeout; anything else ->
// internal-server-error (its text never leaves the server). Wrapped
// errors are unwrapped (errors.As, errors.Is). The types are those RFC
// 6120 §8.3.3 gives each condition.
func StanzaError(err error) stanza.Error {
	var se stanza.Error
	if errors.As(err, &se) {
		return se
	}
	var withStanza interface{ StanzaError() stanza.Error }
	if errors.As(err, &withStanza) {
		return withStanza.StanzaError()
	}
	switch {
	case errors.Is(err, ErrUnknownUser):
		// RFC 6121 §8.5.2.1: no such user is service-unavailable.
		return unavailable(userRefused)
	case errors.Is(err, ErrOffline):
		// RFC 6120 §8.3.3.13: recipient-unavailable, type wait.
		return stanzaErr(stanza.Wait, stanza.RecipientUnavailable, "The recipient is offline and messages are not stored")
	case errors.Is(err, ErrTooLarge):
		// RFC 6120 §8.3.3.12: policy-violation, here modify (a smaller
		// message would go through). REFERENCE §5.7 #77: never cut.
		return stanzaErr(stanza.Modify, stanza.PolicyViolation, "The message is larger than the recipient accepts")
	case errors.Is(err, ErrMalformedAddress):
		// RFC 6120 §8.3.3.8: jid-malformed, type modify.
		return stanzaErr(stanza.Modify, stanza.JIDMalformed, "The address is not a valid JID")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// RFC 6120 §8.3.3.17: remote-server-timeout, type wait.
		return stanzaErr(stanza.Wait, stanza.RemoteServerTimeout, "The recipient's server did not answer in time")
	}
	// RFC 6120 §8.3.3.6: internal-server-error, type cancel. The error's
	// own text stays here: it may describe the host's internals.
	return stanzaErr(stanza.Cancel, stanza.InternalServerError, "Internal server error")
}

// ParseAddress parses and normalizes a JID (RFC 7622 PRECIS profiles, as
// mellium.im/xmpp/jid does); a malformed one is an error wrapping
// ErrMalformedAddress.
//
// It is stricter than jid.Parse alone: a domainpart with an empty label
// ("a..example", or two final dots) is malformed (RFC 7622 §3.2 strips one
// final dot, and RFC 1034 labels are not empty), and the result is a fixed
// point: parsing its String gives it back.
func ParseAddress(s string) (jid.JID, error) {
	j, err := parseJID(s)
	if err != nil {
		return jid.JID{}, fmt.Errorf("%w: %q: %v", ErrMalformedAddress, s, err)
	}
	return j, nil
}

// parseJID parses s with jid.Parse and the checks ParseAddress lists.
func parseJID(s string) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, err
	}
	d := j.Domainpart()
	if d == "" || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, "..") {
		return jid.JID{}, fmt.Errorf("domainpart %q has an empty label", d)
	}
	again, err := jid.Parse(j.String())
	if err != nil || again.String() != j.String() {
		return jid.JID{}, fmt.Errorf("%q does not normalize to a stable form", s)
	}
	return j, nil
}

// hintHolds reports whether j, the JID the s2s layer parsed from the
// address attribute v, can stand for parseJID(v): its string form is v
// exactly (so parsing it again gives j again: the stable-form check holds)
// and its domainpart has no empty label. It compares part by part, without
// j.String().
func hintHolds[S string | []byte](j jid.JID, v S) bool {
	d := j.Domainpart()
	if d == "" || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.Contains(d, "..") {
		return false
	}
	if l := j.Localpart(); l != "" {
		if len(v) <= len(l) || string(v[:len(l)]) != l || v[len(l)] != '@' {
			return false
		}
		v = v[len(l)+1:]
	}
	if len(v) < len(d) || string(v[:len(d)]) != d {
		return false
	}
	v = v[len(d):]
	if r := j.Resourcepart(); r != "" {
		return len(v) == len(r)+1 && v[0] == '/' && string(v[1:]) == r
	}
	return len(v) == 0
}

// maxReplyPayload is the largest stanza whose children ErrorReply copies
// into the reply; a larger one is answered with the error alone.
const maxReplyPayload = 16 << 10

// ErrorReply returns the error reply (RFC 6120 §8.3) to the stanza raw,
// with condition e: from and to swapped, same id, type='error'. It
// refuses to answer an error stanza, or an iq result (RFC 6120 §8.2.3),
// with ErrIgnore.
//
// The reply carries the original child elements (RFC 6120 §8.3.1 allows
// it; the sender sees what failed) when raw is at most 16 KiB and well
// formed to the end, else the error alone, and then
// <error type='…'><condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
// <text …/></error> (RFC 6120 §8.3.2). A type that is not one of RFC
// 6120's five (an empty one) is cancel; a condition §8.3.3 does not define
// (an empty one) is undefined-condition. Only
// the start tag of raw must be sound: a message, presence or iq in
// jabber:server (declared or not) with from and to that are valid JIDs;
// otherwise there is no one to answer and ErrorReply returns an error
// (not ErrIgnore).
func ErrorReply(raw []byte, e stanza.Error) ([]byte, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	start, err := firstStart(d)
	if err != nil {
		return nil, fmt.Errorf("translate: ErrorReply: %v", err)
	}
	kind := start.Name.Local
	switch kind {
	case "message", "presence", "iq":
	default:
		return nil, fmt.Errorf("translate: ErrorReply: <%s> is not a stanza", kind)
	}
	if ns := start.Name.Space; ns != "" && ns != nsServer {
		return nil, fmt.Errorf("translate: ErrorReply: namespace %q, want %q", ns, nsServer)
	}
	var from, to, id, typ, lang string
	var hasFrom, hasTo bool
	var decls []xml.Attr
	for _, a := range start.Attr {
		switch {
		case a.Name.Space == "xmlns" && a.Name.Local != "xml":
			decls = append(decls, xml.Attr{Name: xml.Name{Local: "xmlns:" + a.Name.Local}, Value: a.Value})
		case a.Name.Space == nsXML && a.Name.Local == "lang":
			lang = a.Value
		case a.Name.Space != "":
		case a.Name.Local == "from":
			from, hasFrom = a.Value, true
		case a.Name.Local == "to":
			to, hasTo = a.Value, true
		case a.Name.Local == "id":
			id = a.Value
		case a.Name.Local == "type":
			typ = a.Value
		}
	}
	// RFC 6120 §8.3.1: an error stanza is never answered; §8.2.3: nor is
	// an iq result.
	if typ == "error" || (kind == "iq" && typ == "result") {
		return nil, ErrIgnore
	}
	if !hasFrom || !hasTo {
		return nil, fmt.Errorf("translate: ErrorReply: <%s> has no from or no to address", kind)
	}
	src, err := parseJID(from)
	if err != nil {
		return nil, fmt.Errorf("translate: ErrorReply: from %q: %v", from, err)
	}
	dst, err := parseJID(to)
	if err != nil {
		return nil, fmt.Errorf("translate: ErrorReply: to %q: %v", to, err)
	}
	var payload [][2]int64
	if len(raw) <= maxReplyPayload {
		payload = children(d, start.Name.Space)
	}
	// RFC 6120 §8.3.2: the type is one of five, the condition one of
	// §8.3.3's; anything else would not be understood (or not be XML).
	switch e.Type {
	case stanza.Auth, stanza.Cancel, stanza.Continue, stanza.Modify, stanza.Wait:
	default:
		e.Type = stanza.Cancel
	}
	if !definedCondition(e.Condition) {
		e.Condition = stanza.UndefinedCondition
	}

	attrs := []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: nsServer}}
	if len(payload) > 0 {
		attrs = append(attrs, decls...)
	}
	attrs = append(attrs,
		xml.Attr{Name: xml.Name{Local: "from"}, Value: dst.String()},
		xml.Attr{Name: xml.Name{Local: "to"}, Value: src.String()})
	if id != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "id"}, Value: id})
	}
	attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "type"}, Value: "error"})
	if len(payload) > 0 && lang != "" {
		// The copied children may rely on the language they inherited.
		attrs = append(attrs, xml.Attr{Name: xml.Name{Space: nsXML, Local: "lang"}, Value: lang})
	}
	var b bytes.Buffer
	enc := xml.NewEncoder(&b)
	top := xml.StartElement{Name: xml.Name{Local: kind}, Attr: attrs}
	if err := enc.EncodeToken(top); err != nil {
		return nil, fmt.Errorf("translate: ErrorReply: %v", err)
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	for _, r := range payload {
		// Each child was read to its end by a strict decoder: it is
		// well-formed XML, copied as it came.
		b.Write(raw[r[0]:r[1]])
	}
	if _, err := e.WriteXML(enc); err != nil {
		return nil, fmt.Errorf("translate: ErrorReply: the error element: %v", err)
	}
	if err := enc.EncodeToken(top.End()); err != nil {
		return nil, fmt.Errorf("translate: ErrorReply: %v", err)
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// definedCondition reports whether c is one of the stanza error
// conditions of RFC 6120 §8.3.3.
func definedCondition(c stanza.Condition) bool {
	switch c {
	case stanza.BadRequest, stanza.Conflict, stanza.FeatureNotImplemented, stanza.Forbidden,
		stanza.Gone, stanza.InternalServerError, stanza.ItemNotFound, stanza.JIDMalformed,
		stanza.NotAcceptable, stanza.NotAllowed, stanza.NotAuthorized, stanza.PolicyViolation,
		stanza.RecipientUnavailable, stanza.Redirect, stanza.RegistrationRequired,
		stanza.RemoteServerNotFound, stanza.RemoteServerTimeout, stanza.ResourceConstraint,
		stanza.ServiceUnavailable, stanza.SubscriptionRequired, stanza.UndefinedCondition,
		stanza.UnexpectedRequest:
		return true
	}
	return false
}

// firstStart returns the first start element of d, after whitespace only.
func firstStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			if err == io.EOF {
				return xml.StartElement{}, errors.New("no XML element")
			}
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if err := uniqueAttrs(t); err != nil {
				return xml.StartElement{}, err
			}
			return t, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return xml.StartElement{}, errors.New("text before the stanza")
			}
		default:
			return xml.StartElement{}, fmt.Errorf("%T before the stanza (RFC 6120 §11.1 restricted XML)", tok)
		}
	}
}

// uniqueAttrs reports an error when el has an attribute twice (the same
// name in the same namespace): XML 1.0 §3.1 and Namespaces in XML §6.3
// make that not well-formed, and encoding/xml does not check it. The
// stream reader rejects such elements; Decode and ErrorReply do too, so
// that they never read different values (the first, the last) for one
// attribute.
// Pairwise for a few attributes, with a set beyond (the count is not
// bounded here: Decode takes bytes from anywhere).
func uniqueAttrs(el xml.StartElement) error {
	twice := func(n xml.Name) error {
		name := n.Local
		if n.Space != "" {
			name = n.Space + " " + name
		}
		return fmt.Errorf("<%s> has the attribute %q twice", el.Name.Local, name)
	}
	if len(el.Attr) > 16 {
		seen := make(map[xml.Name]struct{}, len(el.Attr))
		for _, a := range el.Attr {
			if _, ok := seen[a.Name]; ok {
				return twice(a.Name)
			}
			seen[a.Name] = struct{}{}
		}
		return nil
	}
	for i, a := range el.Attr {
		for _, b := range el.Attr[:i] {
			if a.Name == b.Name {
				return twice(a.Name)
			}
		}
	}
	return nil
}

// children reads the rest of a stanza from d (its start tag read) and
// returns the byte ranges of its child elements, leaving out an <error/>
// in the stanza's namespace ns. It returns nil when the rest is not
// well-formed, nests deeper than maxDepth, holds restricted XML (RFC 6120
// §11.1) or is followed by anything but whitespace.
func children(d *xml.Decoder, ns string) [][2]int64 {
	var out [][2]int64
	depth := 1
	var begin int64
	skip := false
	for depth > 0 {
		off := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return nil
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth > maxDepth || !resolved(t) || uniqueAttrs(t) != nil {
				return nil
			}
			if depth == 2 {
				begin = off
				skip = t.Name.Local == "error" && (t.Name.Space == ns || t.Name.Space == nsServer)
			}
		case xml.EndElement:
			depth--
			if depth == 1 && !skip {
				out = append(out, [2]int64{begin, d.InputOffset()})
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
			return nil
		}
	}
	if !trailingSpace(d) {
		return nil
	}
	return out
}

// resolved reports whether the names of start are in no namespace or a
// namespace name: encoding/xml leaves an undeclared prefix as the Space,
// and a prefix has no ':' while a namespace URI does. A child with an
// undeclared prefix (declared on the stream, say) is not copied: it would
// not be namespace-well-formed on its own.
func resolved(start xml.StartElement) bool {
	ok := func(n xml.Name) bool { return n.Space == "" || strings.Contains(n.Space, ":") }
	if !ok(start.Name) {
		return false
	}
	for _, a := range start.Attr {
		if a.Name.Space != "xmlns" && !ok(a.Name) {
			return false
		}
	}
	return true
}

// trailingSpace reports whether d holds nothing but whitespace.
func trailingSpace(d *xml.Decoder) bool {
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		if t, ok := tok.(xml.CharData); !ok || len(bytes.TrimSpace(t)) > 0 {
			return false
		}
	}
}

// quote is strconv.Quote, for error texts.
func quote(s string) string { return strconv.Quote(s) }
