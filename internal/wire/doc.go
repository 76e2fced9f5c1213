// Package wire frames XMPP server-to-server streams: it reads the stream
// header and then one complete top-level element at a time, and writes
// headers, elements, whitespace keepalives and stream errors.
//
// It implements the XML subset of RFC 6120 §11 directly on the bytes, so
// that relaying a stanza costs a few allocations and no token-by-token
// decoding:
//
//   - restricted XML (comments, processing instructions other than the
//     initial XML declaration, DTDs and directives, entity references other
//     than the five predefined ones) fails with restricted-xml (RFC 6120
//     §11.1); character references and CDATA sections are fine;
//   - syntax errors, mismatched tags, undeclared prefixes, characters that
//     XML forbids and invalid UTF-8 fail with not-well-formed (RFC 6120
//     §11.6 requires UTF-8; an XML declaration naming another encoding
//     fails with unsupported-encoding);
//   - an element larger than Limits.MaxStanzaBytes or nested deeper than
//     Limits.MaxDepth fails with policy-violation; the size is checked while
//     reading, so no more than about the limit is ever buffered, and the
//     error carries the <stanza-too-big xmlns='urn:xmpp:errors'/> condition
//     that Prosody sends and XEP-0478 describes;
//   - a start tag with more than Limits.MaxAttrs attributes (namespace
//     declarations included), or more than Limits.MaxAttrs namespace
//     declarations in scope at once, fails with policy-violation, which
//     keeps the duplicate and prefix checks cheap;
//   - a stream element outside http://etherx.jabber.org/streams or a
//     default namespace other than jabber:server fails with
//     invalid-namespace (RFC 6120 §4.8).
//
// Each such failure is a *StreamError whose Cond is ready to be sent with
// Writer.WriteStreamError (or Writer.WriteError). Element.Raw is
// self-contained: namespaces the element inherited from the stream header
// are declared on it, so it can be relayed into another stream or parsed on
// its own. Element.Children and Element.Text parse Raw with encoding/xml
// lazily, for negotiation elements.
//
// Only package s2s should use this package.
package wire
