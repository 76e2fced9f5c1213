package wire

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"sync/atomic"

	"mellium.im/xmpp/stream"
)

// Limits bounds what a Reader accepts. Zero fields mean the defaults;
// negative fields are treated as zero.
type Limits struct {
	// MaxStanzaBytes bounds one top-level element, in bytes as sent,
	// from its '<' to the '>' of its end tag. Zero means 512 KiB (Prosody's
	// default for s2s). It is enforced while reading: at most about
	// MaxStanzaBytes plus one read buffer is held in memory.
	MaxStanzaBytes int
	// MaxDepth bounds element nesting: the top-level element is level 1,
	// its children level 2, and so on. Zero means 64.
	MaxDepth int
	// MaxHeaderBytes bounds the bytes before and including the stream
	// header's start tag (XML declaration, whitespace, <stream:stream ...>).
	// Zero means 16 KiB.
	MaxHeaderBytes int
	// MaxAttrs bounds the attributes of one start tag, namespace
	// declarations included, and the namespace declarations in scope at
	// once (over the open elements). Zero means 64. Checking attribute
	// names for duplicates and resolving prefixes costs in proportion to
	// these counts, so without a bound one element of 50 000 short
	// attributes, well inside MaxStanzaBytes, took seconds of CPU.
	MaxAttrs int
}

const (
	defaultMaxStanza = 512 << 10
	defaultMaxDepth  = 64
	defaultMaxHeader = 16 << 10
	defaultMaxAttrs  = 64
	minRead          = 4096
	minFree          = 512 // grow the buffer when less than this is free for a read
	shrinkAbove      = 64 << 10
	maxEmptyReads    = 100
	maxEntityLen     = 32
)

func (l Limits) withDefaults() Limits {
	if l.MaxStanzaBytes <= 0 {
		l.MaxStanzaBytes = defaultMaxStanza
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = defaultMaxDepth
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = defaultMaxHeader
	}
	if l.MaxAttrs <= 0 {
		l.MaxAttrs = defaultMaxAttrs
	}
	return l
}

// Header is a parsed <stream:stream> start tag (RFC 6120 §4.7).
type Header struct {
	From, To, ID, Version, Lang string // raw attribute values ("" if absent); Lang is xml:lang
	XMLNS                       string // default namespace declared (must be jabber:server for s2s)
	Dialback                    bool   // xmlns:db='jabber:server:dialback' was declared
}

type readState uint8

const (
	stateHeader readState = iota // next call must be ReadHeader
	stateStream                  // reading top-level elements
	stateEnded                   // peer sent </stream:stream>
)

// binding is a namespace declaration in scope. Header bindings are kept as
// strings; bindings inside the current element are spans of r.buf so that
// declaring a namespace on a child costs no allocation.
type binding struct {
	depth        int // 0: stream header
	prefix, uri  string
	pStart, pEnd int // prefix span in r.buf (pStart == pEnd: default namespace)
	uStart, uEnd int // raw value span in r.buf
	needDecode   bool
	header       bool // declared on the stream header (in r.hdr)
	used         bool // header binding used by the current element
}

type span struct{ start, colon, end int }

type attrSpan struct {
	name         span
	vStart, vEnd int // raw value, without quotes
	needDecode   bool
}

// Reader reads one XMPP stream: the header, then top-level elements one at a
// time. It implements the XML subset of RFC 6120 §11 itself, without
// encoding/xml, so that relaying a stanza costs a few allocations.
//
// A Reader is not safe for concurrent use, except LastActivity, which may be
// called from any goroutine.
type Reader struct {
	src   io.Reader
	lim   Limits
	buf   []byte
	pos   int
	count atomic.Int64
	state readState
	err   error // sticky protocol error

	unitStart int // start of the unit being scanned (header or element)
	limit     int // size bound for the current unit; 0: none

	streamName string // qualified name of the stream element, e.g. "stream:stream"
	defaultNS  string // header default namespace

	hdr         []binding // declared on the stream header
	binds       []binding // declared inside the current element
	open        []span
	attrs       []attrSpan
	auris       [][]byte // startTag's scratch: the namespace name of each prefixed attribute
	usedDefault bool
	nonASCII    bool

	pool  *BufferPool     // nil: r.buf is kept for the life of the Reader
	small [smallRead]byte // with a pool: the blocking read of an idle stream
}

// SetBufferPool makes r borrow its buffer from p and give it back whenever
// everything read has been consumed, so that a Reader waiting for input
// holds no buffer: the read that waits goes into a small inline array, and
// a buffer is taken from p only once bytes arrive. Nil stops using a pool.
// Like the other methods it must not be called concurrently with them.
func (r *Reader) SetBufferPool(p *BufferPool) { r.pool = p }

// release gives r.buf back to the pool when nothing is buffered.
func (r *Reader) release() {
	if r.pool == nil || r.pos < len(r.buf) || r.buf == nil {
		return
	}
	r.pool.put(r.buf)
	r.buf, r.pos, r.unitStart = nil, 0, 0
}

// Shrink drops what the Reader keeps between elements only to go faster:
// its scratch spans (attributes, namespace declarations, open elements)
// and, with a buffer pool and nothing buffered, its read buffer. The next
// element allocates them again. It is for a stream that went idle; it may
// be called between any two calls of the other methods and changes
// nothing they return.
func (r *Reader) Shrink() {
	r.attrs, r.binds, r.open, r.auris = nil, nil, nil, nil
	r.release()
}

// NewReader returns a Reader for the stream arriving on r. Call ReadHeader
// first, then Next.
func NewReader(r io.Reader, lim Limits) *Reader {
	return &Reader{src: r, lim: lim.withDefaults()}
}

// Reset starts a new stream on src, e.g. the TLS connection after STARTTLS
// (RFC 6120 §5.4.3.3) or the same transport after SASL success (RFC 6120
// §6.4.6). All state is dropped, including bytes read ahead from the old
// transport (see Buffered) and a sticky error; the next call must be
// ReadHeader. LastActivity keeps counting.
func (r *Reader) Reset(src io.Reader) {
	r.src = src
	r.buf = r.buf[:0]
	r.pos = 0
	r.state = stateHeader
	r.err = nil
	r.unitStart, r.limit = 0, 0
	r.streamName, r.defaultNS = "", ""
	r.hdr = r.hdr[:0]
	r.binds = r.binds[:0]
	r.open = r.open[:0]
	r.attrs = r.attrs[:0]
	r.release()
}

// Buffered returns the number of bytes read from the transport but not yet
// consumed. A peer that sends data after <starttls/> or <proceed/> before the
// TLS handshake is misbehaving; those bytes would be dropped by Reset.
func (r *Reader) Buffered() int { return len(r.buf) - r.pos }

// LastActivity returns the total number of bytes read from the transport(s)
// so far. It only grows; a change means the peer sent something, including
// whitespace keepalives (RFC 6120 §4.6.1). Safe to call concurrently with
// the other methods.
func (r *Reader) LastActivity() int64 { return r.count.Load() }

// fill reads more bytes from the transport, enforcing the size limit of the
// unit being scanned before buffering more of it.
func (r *Reader) fill() error {
	if r.limit > 0 && len(r.buf)-r.unitStart >= r.limit {
		return r.tooBig()
	}
	if r.src == nil {
		return io.EOF
	}
	if r.buf == nil && r.pool != nil {
		return r.fillSmall()
	}
	if cap(r.buf)-len(r.buf) < minFree {
		nb := make([]byte, len(r.buf), 2*cap(r.buf)+minRead)
		copy(nb, r.buf)
		r.buf = nb
	}
	for range maxEmptyReads {
		n, err := r.src.Read(r.buf[len(r.buf):cap(r.buf)])
		if n > 0 {
			r.buf = r.buf[:len(r.buf)+n]
			r.count.Add(int64(n))
			return nil // a non-nil err will be returned again by the next Read
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// fillSmall is fill for a Reader that holds no buffer (it uses a pool and
// was idle): it waits for input in r.small and only then borrows a buffer,
// so that an idle stream blocked here costs no buffer.
func (r *Reader) fillSmall() error {
	for range maxEmptyReads {
		n, err := r.src.Read(r.small[:])
		if n > 0 {
			r.buf = append(r.pool.get(), r.small[:n]...)
			r.count.Add(int64(n))
			return nil // a non-nil err will be returned again by the next Read
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

func (r *Reader) tooBig() error {
	if r.state == stateHeader {
		return r.fail(stream.PolicyViolation, "stream header exceeds %d bytes", r.lim.MaxHeaderBytes)
	}
	e := newStreamError(stream.PolicyViolation, "element exceeds %d bytes", r.lim.MaxStanzaBytes)
	e.App = AppStanzaTooBig // XEP-0478, Prosody
	r.err = e
	return e
}

func (r *Reader) fail(cond stream.Error, format string, args ...any) error {
	e := newStreamError(cond, format, args...)
	r.err = e
	return e
}

// need makes sure n bytes are buffered at r.pos.
func (r *Reader) need(n int) error {
	for len(r.buf)-r.pos < n {
		if err := r.fill(); err != nil {
			return err
		}
	}
	return nil
}

// peek returns the byte at r.pos, reading more if needed.
func (r *Reader) peek() (byte, error) {
	if r.pos >= len(r.buf) {
		if err := r.need(1); err != nil {
			return 0, err
		}
	}
	return r.buf[r.pos], nil
}

// hasPrefix reports whether the buffered input at r.pos starts with s; it
// reads more input only as far as needed to decide.
func (r *Reader) hasPrefix(s string) (bool, error) {
	for i := 0; i < len(s); i++ {
		if r.pos+i >= len(r.buf) {
			if err := r.need(i + 1); err != nil {
				return false, err
			}
		}
		if r.buf[r.pos+i] != s[i] {
			return false, nil
		}
	}
	return true, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (r *Reader) skipSpace() (bool, error) {
	skipped := false
	for {
		c, err := r.peek()
		if err != nil {
			return skipped, err
		}
		if !isSpace(c) {
			return skipped, nil
		}
		skipped = true
		r.pos++
	}
}

// finish turns an error from the scanner into what the caller sees: protocol
// errors stick; transport errors rewind to the start of the unit so that a
// call after, say, a read deadline rescans it from its buffered bytes.
func (r *Reader) finish(err error) error {
	var se *StreamError
	if errors.As(err, &se) {
		r.err = err
		return err
	}
	if errors.Is(err, io.EOF) && r.pos > r.unitStart {
		err = io.ErrUnexpectedEOF
	}
	r.pos = r.unitStart
	return err
}

// ReadHeader reads the optional XML declaration and the stream header
// (RFC 6120 §4.7). Whitespace (and a UTF-8 byte order mark) before them is
// skipped. It fails with a *StreamError when the declaration names an
// encoding other than UTF-8 (unsupported-encoding), the stream element is
// not {http://etherx.jabber.org/streams}stream or the default namespace is
// not jabber:server (invalid-namespace, RFC 6120 §4.8), restricted XML
// precedes it (restricted-xml, RFC 6120 §11.1), or it exceeds
// Limits.MaxHeaderBytes (policy-violation). io.EOF means the transport
// ended before any byte of the header.
func (r *Reader) ReadHeader() (Header, error) {
	if r.err != nil {
		return Header{}, r.err
	}
	if r.state != stateHeader {
		return Header{}, ErrHeaderRead
	}
	r.unitStart = r.pos
	r.limit = r.lim.MaxHeaderBytes
	h, err := r.readHeader()
	if err != nil {
		return Header{}, r.finish(err)
	}
	r.state = stateStream
	r.limit = 0
	return h, nil
}

func (r *Reader) readHeader() (Header, error) {
	if ok, err := r.hasPrefix("\xef\xbb\xbf"); err != nil && !(errors.Is(err, io.EOF) && r.pos == len(r.buf)) {
		return Header{}, err
	} else if ok {
		r.pos += 3
	}
	if _, err := r.skipSpace(); err != nil {
		return Header{}, err
	}
	if ok, err := r.hasPrefix("<?xml"); err != nil {
		return Header{}, err
	} else if ok {
		if err := r.need(6); err != nil {
			return Header{}, err
		}
		if c := r.buf[r.pos+5]; isSpace(c) || c == '?' {
			if err := r.xmlDecl(); err != nil {
				return Header{}, err
			}
		}
	}
	if _, err := r.skipSpace(); err != nil {
		return Header{}, err
	}
	if err := r.need(2); err != nil {
		return Header{}, err
	}
	if r.buf[r.pos] != '<' {
		return Header{}, r.fail(stream.NotWellFormed, "expected stream header, found %q", r.buf[r.pos])
	}
	switch r.buf[r.pos+1] {
	case '?':
		return Header{}, r.fail(stream.RestrictedXML, "processing instruction before the stream header") // RFC 6120 §11.1
	case '!':
		return Header{}, r.fail(stream.RestrictedXML, "comment or DTD before the stream header") // RFC 6120 §11.1
	case '/':
		return Header{}, r.fail(stream.NotWellFormed, "end tag before the stream header")
	}
	r.pos++ // '<'
	r.binds = r.binds[:0]
	r.nonASCII = false
	name, self, err := r.startTag(0)
	if err != nil {
		return Header{}, err
	}
	if r.pos-r.unitStart > r.lim.MaxHeaderBytes {
		return Header{}, r.tooBig()
	}
	if self {
		return Header{}, r.fail(stream.BadFormat, "self-closing stream header")
	}
	if r.nonASCII {
		if err := r.checkNonASCIINames(r.buf[r.unitStart:r.pos]); err != nil {
			return Header{}, err
		}
	}
	// Header bindings become strings: they live as long as the stream,
	// in a slice of their own size (not the scratch one they were
	// scanned into).
	var h Header
	r.hdr = slices.Clone(r.binds)
	r.binds = r.binds[:0]
	for i := range r.hdr {
		b := &r.hdr[i]
		b.prefix = string(r.buf[b.pStart:b.pEnd])
		b.uri = r.attrString(b.uStart, b.uEnd, b.needDecode)
		b.header = true
		if b.prefix == "" {
			h.XMLNS = b.uri
		}
		if b.prefix == "db" && b.uri == NSDialback {
			h.Dialback = true
		}
	}
	r.defaultNS = h.XMLNS
	var space string
	b, err := r.lookup(name, true)
	if err != nil {
		return Header{}, err
	}
	if b != nil {
		space = b.uri
	}
	local := string(r.buf[name.colon+1 : name.end])
	for _, a := range r.attrs {
		if a.name.colon >= a.name.start && !a.isXMLNS(r.buf) {
			if _, err := r.lookup(a.name, false); err != nil { // Namespaces in XML §5
				return Header{}, err
			}
		}
	}
	if space != NSStreams || local != "stream" {
		return Header{}, r.fail(stream.InvalidNamespace, "stream element is {%s}%s, want {%s}stream", space, local, NSStreams) // RFC 6120 §4.8.1
	}
	if h.XMLNS != NSServer {
		return Header{}, r.fail(stream.InvalidNamespace, "default namespace is %q, want %q", h.XMLNS, NSServer) // RFC 6120 §4.8.2
	}
	for _, a := range r.attrs {
		n := r.buf[a.name.start:a.name.end]
		var dst *string
		switch string(n) {
		case "from":
			dst = &h.From
		case "to":
			dst = &h.To
		case "id":
			dst = &h.ID
		case "version":
			dst = &h.Version
		case "xml:lang":
			dst = &h.Lang
		default:
			continue
		}
		*dst = r.attrString(a.vStart, a.vEnd, a.needDecode)
	}
	r.streamName = string(r.buf[name.start:name.end])
	// The header has more attributes and declarations than a stanza: its
	// scratch spans are not kept for the life of the stream; the first
	// element allocates its own.
	r.attrs, r.binds = nil, nil
	// Drop the header bytes: elements start at offset 0 of r.buf.
	r.compact()
	return h, nil
}

// xmlDecl parses <?xml version=... encoding=... standalone=...?> at r.pos.
// XML 1.0 §2.8: version comes first and is required, then the optional
// encoding and standalone, in that order; XMPP is XML 1.0 (RFC 6120 §11)
// in UTF-8 (§11.6).
func (r *Reader) xmlDecl() error {
	r.pos += 5
	order := [...]string{"version", "encoding", "standalone"}
	next := 0 // index in order of the next attribute allowed
	for {
		if _, err := r.skipSpace(); err != nil {
			return err
		}
		if ok, err := r.hasPrefix("?>"); err != nil {
			return err
		} else if ok {
			if next == 0 {
				return r.fail(stream.NotWellFormed, "XML declaration without version")
			}
			r.pos += 2
			return nil
		}
		n, err := r.scanName()
		if err != nil {
			return err
		}
		if _, err := r.skipSpace(); err != nil {
			return err
		}
		if c, err := r.peek(); err != nil {
			return err
		} else if c != '=' {
			return r.fail(stream.NotWellFormed, "malformed XML declaration")
		}
		r.pos++
		if _, err := r.skipSpace(); err != nil {
			return err
		}
		vs, ve, _, err := r.attrValue()
		if err != nil {
			return err
		}
		name := string(r.buf[n.start:n.end])
		i := next
		for i < len(order) && order[i] != name {
			i++
		}
		if i == len(order) || (next == 0 && i != 0) {
			return r.fail(stream.NotWellFormed, "XML declaration: unexpected or misplaced %q", name)
		}
		next = i + 1
		switch name {
		case "version":
			if string(r.buf[vs:ve]) != "1.0" {
				return r.fail(stream.NotWellFormed, "XML declaration: version %q is not XML 1.0", r.buf[vs:ve])
			}
		case "encoding":
			if !equalFoldASCII(r.buf[vs:ve], "utf-8") {
				// RFC 6120 §11.6: UTF-8 only.
				return r.fail(stream.UnsupportedEncoding, "XML declaration names encoding %q", r.buf[vs:ve])
			}
		}
	}
}

func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// compact moves unconsumed bytes to the front of the buffer.
func (r *Reader) compact() {
	if r.pos == 0 {
		return
	}
	n := copy(r.buf, r.buf[r.pos:])
	r.buf = r.buf[:n]
	r.pos = 0
	r.unitStart = 0
}

// Next returns the next top-level element of the stream. Whitespace between
// elements (keepalives, RFC 6120 §4.6.1) is skipped; it still counts in
// LastActivity.
//
// Errors: ErrStreamEnd after </stream:stream>; io.EOF when the transport
// ends cleanly between elements without </stream:stream>, and
// io.ErrUnexpectedEOF when it ends inside an element; a *StreamError for a
// protocol violation (it sticks: every later call returns it); any other
// transport error as returned by the io.Reader (e.g. one matching
// os.ErrDeadlineExceeded). After a transport error Next may be called again:
// the partially read element is rescanned from the buffered bytes.
func (r *Reader) Next() (*Element, error) {
	if r.err != nil {
		return nil, r.err
	}
	switch r.state {
	case stateHeader:
		return nil, ErrNoHeader
	case stateEnded:
		return nil, ErrStreamEnd
	}
	r.compact()
	if cap(r.buf) > shrinkAbove && len(r.buf) <= minRead {
		// Do not keep the buffer of one large stanza for the life of the
		// stream: idle streams should be cheap.
		r.buf = append(make([]byte, 0, 2*minRead), r.buf...)
	}
	r.limit = 0
	// Skip whitespace between elements without growing the buffer.
	for {
		for r.pos < len(r.buf) && isSpace(r.buf[r.pos]) {
			r.pos++
		}
		if r.pos < len(r.buf) {
			break
		}
		r.buf, r.pos = r.buf[:0], 0
		r.release()
		if err := r.fill(); err != nil {
			r.unitStart = 0
			return nil, r.finish(err)
		}
	}
	r.unitStart = r.pos
	r.limit = r.lim.MaxStanzaBytes
	e, err := r.element()
	r.limit = 0
	if err != nil {
		return nil, r.finish(err)
	}
	return e, nil
}

func (r *Reader) element() (*Element, error) {
	if r.buf[r.pos] != '<' {
		// Character data directly inside the stream element other than
		// whitespace carries no meaning in XMPP.
		return nil, r.fail(stream.BadFormat, "text %q between top-level elements", r.buf[r.pos])
	}
	if err := r.need(2); err != nil {
		return nil, err
	}
	start := r.pos
	switch r.buf[r.pos+1] {
	case '/':
		r.pos += 2
		n, err := r.scanName()
		if err != nil {
			return nil, err
		}
		if err := r.endTagRest(); err != nil {
			return nil, err
		}
		if string(r.buf[n.start:n.end]) != r.streamName {
			return nil, r.fail(stream.NotWellFormed, "end tag </%s> does not match <%s>", r.buf[n.start:n.end], r.streamName)
		}
		r.state = stateEnded
		r.unitStart = r.pos
		return nil, ErrStreamEnd
	case '?', '!':
		return nil, r.markup()
	}
	r.pos++
	r.binds = r.binds[:0]
	r.open = r.open[:0]
	r.usedDefault = false
	for i := range r.hdr {
		r.hdr[i].used = false
	}
	r.nonASCII = false
	name, self, err := r.startTag(1)
	if err != nil {
		return nil, err
	}
	tagEnd := r.pos
	// Strings for the root start tag share one allocation.
	tag := string(r.buf[start:tagEnd])
	e := &Element{}
	e.Name = xml.Name{Space: r.rootURI(name, true, tag, start), Local: tag[name.colon+1-start : name.end-start]}
	if n := r.countAttrs(); n <= len(e.attrBuf) {
		e.Attr = e.attrBuf[:0:n]
	} else {
		e.Attr = make([]xml.Attr, 0, n)
	}
	for _, a := range r.attrs {
		if a.isXMLNS(r.buf) {
			continue
		}
		var an xml.Name
		an.Local = tag[a.name.colon+1-start : a.name.end-start]
		an.Space = r.rootURI(a.name, false, tag, start)
		var v string
		if a.needDecode {
			v = decodeAttr(r.buf[a.vStart:a.vEnd])
		} else {
			v = tag[a.vStart-start : a.vEnd-start]
		}
		e.Attr = append(e.Attr, xml.Attr{Name: an, Value: v})
	}
	if !self {
		r.open = append(r.open[:0], name)
		if err := r.content(); err != nil {
			return nil, err
		}
	}
	if r.pos-start > r.lim.MaxStanzaBytes {
		return nil, r.tooBig()
	}
	if r.nonASCII {
		if err := r.checkNonASCIINames(r.buf[start:r.pos]); err != nil {
			return nil, err
		}
	}
	e.Raw = r.selfContained(start, name.end, r.pos)
	return e, nil
}

// markup handles <? and <! outside a CDATA-permitting context or inside
// content: everything but CDATA is restricted XML (RFC 6120 §11.1).
func (r *Reader) markup() error {
	if r.buf[r.pos+1] == '?' {
		return r.fail(stream.RestrictedXML, "processing instruction") // RFC 6120 §11.1
	}
	if ok, err := r.hasPrefix("<!--"); err != nil {
		return err
	} else if ok {
		return r.fail(stream.RestrictedXML, "comment") // RFC 6120 §11.1
	}
	return r.fail(stream.RestrictedXML, "DTD, directive or CDATA outside an element") // RFC 6120 §11.1
}

func (a *attrSpan) isXMLNS(buf []byte) bool {
	if a.name.colon < a.name.start {
		return string(buf[a.name.start:a.name.end]) == "xmlns"
	}
	return string(buf[a.name.start:a.name.colon]) == "xmlns"
}

func (r *Reader) countAttrs() int {
	n := 0
	for i := range r.attrs {
		if !r.attrs[i].isXMLNS(r.buf) {
			n++
		}
	}
	return n
}

// selfContained returns a copy of buf[start:end], with xmlns declarations
// for the header namespaces that the element uses inserted after the root's
// name (RFC 6120 §4.8: a stanza relayed elsewhere must not depend on the
// header of the stream it came from).
func (r *Reader) selfContained(start, nameEnd, end int) []byte {
	extra := 0
	for i := range r.hdr {
		b := &r.hdr[i]
		if b.used {
			extra += len(" xmlns:='") + len(b.prefix) + len(b.uri) + 8
		}
	}
	if r.usedDefault {
		extra += len(" xmlns=''") + len(r.defaultNS) + 8
	}
	if extra == 0 {
		return bytes.Clone(r.buf[start:end])
	}
	raw := make([]byte, 0, end-start+extra)
	raw = append(raw, r.buf[start:nameEnd]...)
	if r.usedDefault {
		raw = append(raw, " xmlns='"...)
		raw = AppendEscaped(raw, r.defaultNS)
		raw = append(raw, '\'')
	}
	for i := range r.hdr {
		b := &r.hdr[i]
		if b.used {
			raw = append(raw, " xmlns:"...)
			raw = append(raw, b.prefix...)
			raw = append(raw, "='"...)
			raw = AppendEscaped(raw, b.uri)
			raw = append(raw, '\'')
			b.used = false
		}
	}
	return append(raw, r.buf[nameEnd:end]...)
}
