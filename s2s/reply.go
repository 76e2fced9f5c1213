package s2s

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// ResultReply returns the result to the iq get or set st (RFC 6120
// §8.2.3): type='result', the same id, from and to swapped, with payload
// (one complete XML element in its own namespace, or nothing) as its
// child. It is the fast path for servers answering requests to their own
// domains: an empty payload (an XEP-0199 pong) is not parsed at all; a
// payload is checked to be well-formed XML with no text around it.
func (st *Stanza) ResultReply(payload []byte) (*Stanza, error) {
	if st.Kind != "iq" || (st.Type != "get" && st.Type != "set") {
		return nil, fmt.Errorf("s2s: ResultReply: <%s type=%q> is not an iq get or set", st.Kind, st.Type)
	}
	if st.ID == "" {
		return nil, errors.New("s2s: ResultReply: the iq has no id (RFC 6120 §8.2.3)")
	}
	if len(payload) > 0 {
		if err := checkPayload(payload); err != nil {
			return nil, err
		}
	}
	from, to := st.To.String(), st.From.String()
	b := make([]byte, 0, 64+len(from)+len(to)+len(st.ID)+len(payload))
	b = append(b, "<iq xmlns='jabber:server'"...)
	b = appendAttr(b, "from", from)
	b = appendAttr(b, "to", to)
	b = appendAttr(b, "id", st.ID)
	b = append(b, " type='result'"...)
	if len(payload) == 0 {
		b = append(b, "/>"...)
	} else {
		b = append(b, '>')
		b = append(b, payload...)
		b = append(b, "</iq>"...)
	}
	return &Stanza{
		Kind: "iq", From: st.To, To: st.From, ID: st.ID, Type: "result",
		raw: b, srcDomain: st.dstDomain, dstDomain: st.srcDomain,
	}, nil
}

// checkPayload checks that payload is one well-formed element and nothing
// else, without comments, processing instructions or directives (RFC 6120
// §11.1).
func checkPayload(payload []byte) error {
	d := xml.NewDecoder(bytes.NewReader(payload))
	d.Strict = true
	depth, elems := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: payload: %v", ErrInvalidStanza, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				elems++
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return fmt.Errorf("%w: payload: text outside its element", ErrInvalidStanza)
			}
		default:
			return fmt.Errorf("%w: payload: %T (RFC 6120 §11.1 restricted XML)", ErrInvalidStanza, tok)
		}
	}
	if elems != 1 || depth != 0 {
		return fmt.Errorf("%w: payload: %d elements, want exactly one", ErrInvalidStanza, elems)
	}
	return nil
}
