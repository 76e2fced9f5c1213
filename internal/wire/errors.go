package wire

import (
	"errors"
	"fmt"

	"mellium.im/xmpp/stream"
)

// Namespaces used on server-to-server streams.
const (
	// NSStreams is the namespace of the stream element itself (RFC 6120 §4.8.1).
	NSStreams = "http://etherx.jabber.org/streams"
	// NSServer is the content namespace of server-to-server streams (RFC 6120 §4.8.2).
	NSServer = "jabber:server"
	// NSDialback is the XEP-0220 namespace, used with the db: prefix.
	NSDialback = "jabber:server:dialback"
	// NSStreamErrors is the namespace of stream error conditions (RFC 6120 §4.9.3).
	NSStreamErrors = "urn:ietf:params:xml:ns:xmpp-streams"
	// NSXML is the namespace bound to the reserved xml: prefix (xml:lang).
	NSXML = "http://www.w3.org/XML/1998/namespace"
	// NSErrors is the namespace of the XEP-0182 application error conditions.
	NSErrors = "urn:xmpp:errors"
	// NSTLS is the STARTTLS namespace (RFC 6120 §5).
	NSTLS = "urn:ietf:params:xml:ns:xmpp-tls"
	// NSSASL is the SASL namespace (RFC 6120 §6).
	NSSASL = "urn:ietf:params:xml:ns:xmpp-sasl"
	// NSDialbackFeature is the dialback stream feature (XEP-0220 §2.5).
	NSDialbackFeature = "urn:xmpp:features:dialback"
	// NSBidiFeature is the bidirectional streams feature (XEP-0288 §2).
	NSBidiFeature = "urn:xmpp:features:bidi"
	// NSBidi is the element that requests bidi (XEP-0288 §2).
	NSBidi = "urn:xmpp:bidi"
	// NSLimits is the stream limits feature (XEP-0478).
	NSLimits = "urn:xmpp:stream-limits:0"
	// NSSM is stream management (XEP-0198).
	NSSM = "urn:xmpp:sm:3"
	// NSPing is XMPP ping (XEP-0199).
	NSPing = "urn:xmpp:ping"
)

// AppStanzaTooBig is the application-specific condition that Prosody and
// XEP-0478 use alongside policy-violation when a stanza exceeds the size
// limit. A *StreamError caused by MaxStanzaBytes carries it in App.
const AppStanzaTooBig = "<stanza-too-big xmlns='urn:xmpp:errors'/>"

// ErrStreamEnd is returned by Reader.Next when the peer closed its stream
// with </stream:stream> (RFC 6120 §4.4). The caller should answer with its
// own closing tag and then close the transport.
var ErrStreamEnd = errors.New("wire: peer closed the stream")

// ErrNoHeader is returned by Reader.Next when ReadHeader has not yet
// succeeded on the current stream (after NewReader or Reset).
var ErrNoHeader = errors.New("wire: stream header not read yet")

// ErrHeaderRead is returned by Reader.ReadHeader when the header of the
// current stream was already read; call Reset to start a new stream.
var ErrHeaderRead = errors.New("wire: stream header already read")

// ErrClosed is returned by Writer methods after Close or WriteStreamError
// ended the output stream; Reset starts a new one.
var ErrClosed = errors.New("wire: output stream already closed")

// ErrNoTransport is returned by Writer methods when the Writer has no
// destination (NewWriter(nil) or Reset(nil)).
var ErrNoTransport = errors.New("wire: writer has no transport")

// StreamError is a protocol violation by the peer that ends the stream.
// Cond is the RFC 6120 §4.9.3 condition to send back with
// Writer.WriteStreamError (or Writer.WriteError, which also sends App).
type StreamError struct {
	Cond stream.Error // condition to report to the peer
	Err  error        // what exactly was wrong (for logs; do not send to the peer)
	// App is an optional application-specific condition element as raw XML
	// (RFC 6120 §4.9.4), e.g. AppStanzaTooBig; "" if none.
	App string
}

// Error describes the violation.
func (e *StreamError) Error() string {
	if e.Err == nil {
		return "wire: " + e.Cond.Err
	}
	return "wire: " + e.Cond.Err + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *StreamError) Unwrap() error { return e.Err }

// Is reports whether target is a stream.Error with the same condition (or
// the zero stream.Error, which matches any condition), so that
// errors.Is(err, stream.RestrictedXML) works.
func (e *StreamError) Is(target error) bool {
	t, ok := target.(stream.Error)
	if !ok {
		return false
	}
	return t.Err == "" || t.Err == e.Cond.Err
}

func newStreamError(cond stream.Error, format string, args ...any) *StreamError {
	return &StreamError{Cond: cond, Err: fmt.Errorf(format, args...)}
}
