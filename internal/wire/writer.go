package wire

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"unicode"
	"unicode/utf8"

	"mellium.im/xmpp/stream"
)

// Writer writes one XMPP stream. It is safe for concurrent use: every
// method writes whole units under a mutex and, unless documented otherwise,
// flushes before returning.
type Writer struct {
	mu     sync.Mutex
	dst    io.Writer // nil: no transport
	buf    []byte    // unflushed bytes; nil when none and a pool is used
	err    error     // sticky transport error, as bufio.Writer has
	pool   *BufferPool
	closed bool
	scr    []byte
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{dst: w}
}

// SetBufferPool makes w borrow its buffer from p for each batch of writes
// and give it back after every flush, so that a Writer with nothing to
// write holds no buffer. Nil stops using a pool.
func (w *Writer) SetBufferPool(p *BufferPool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pool = p
	w.releaseLocked()
}

// releaseLocked gives an empty buffer back to the pool.
func (w *Writer) releaseLocked() {
	if w.pool != nil && len(w.buf) == 0 && w.buf != nil {
		w.pool.put(w.buf)
		w.buf = nil
	}
}

// Reset starts a new output stream on dst, e.g. the TLS connection after
// STARTTLS (RFC 6120 §5.4.3.3): buffered unflushed bytes are dropped and
// the Writer is open again. WriteHeader should follow.
func (w *Writer) Reset(dst io.Writer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = false
	w.dst = dst
	w.err = nil
	w.buf = w.buf[:0]
	w.releaseLocked()
}

func (w *Writer) usable() error {
	if w.dst == nil {
		return ErrNoTransport
	}
	if w.closed {
		return ErrClosed
	}
	return nil
}

func (w *Writer) write(b []byte, flush bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	return w.writeLocked(b, flush)
}

// writeLocked buffers b (writing through when it does not fit), and
// flushes if asked.
func (w *Writer) writeLocked(b []byte, flush bool) error {
	if w.err != nil {
		return w.err
	}
	if w.buf == nil {
		if w.pool != nil {
			w.buf = w.pool.get()
		} else {
			w.buf = make([]byte, 0, poolBufSize)
		}
	}
	if len(w.buf)+len(b) > cap(w.buf) {
		if err := w.writeBuf(); err != nil {
			return err
		}
		if len(b) >= cap(w.buf) {
			// Too big to buffer: write it through, as bufio does.
			return w.writeDst(b)
		}
	}
	w.buf = append(w.buf, b...)
	if flush {
		return w.flushLocked()
	}
	return nil
}

// writeDst writes b to the transport; errors stick.
func (w *Writer) writeDst(b []byte) error {
	n, err := w.dst.Write(b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = err
	}
	return err
}

// flushLocked writes the buffer to the transport and, with a pool, gives
// the buffer back.
func (w *Writer) flushLocked() error {
	if err := w.writeBuf(); err != nil {
		return err
	}
	w.releaseLocked()
	return nil
}

// writeBuf writes the buffered bytes to the transport, keeping the buffer.
func (w *Writer) writeBuf() error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf) > 0 {
		if err := w.writeDst(w.buf); err != nil {
			return err
		}
		w.buf = w.buf[:0]
	}
	return nil
}

func appendAttr(b []byte, name, value string) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	b = append(b, "='"...)
	b = AppendEscaped(b, value)
	return append(b, '\'')
}

// WriteHeader writes the XML declaration and the stream header (RFC 6120
// §4.7): <?xml version='1.0'?><stream:stream xmlns='jabber:server'
// xmlns:stream='http://etherx.jabber.org/streams'
// xmlns:db='jabber:server:dialback' from=... to=... id=... version='1.0'
// xml:lang=...>. Empty attributes are omitted, except that an empty Version
// is sent as '1.0' (RFC 6120 §4.7.5) and an empty XMLNS as jabber:server.
// xmlns:db is always declared: XEP-0220 §2.4 requires the declaration for
// dialback, and Dialback is ignored.
func (w *Writer) WriteHeader(h Header) error {
	ns := h.XMLNS
	if ns == "" {
		ns = NSServer
	}
	ver := h.Version
	if ver == "" {
		ver = "1.0"
	}
	b := make([]byte, 0, 256)
	b = append(b, "<?xml version='1.0'?><stream:stream"...)
	b = appendAttr(b, "xmlns", ns)
	b = appendAttr(b, "xmlns:stream", NSStreams)
	b = appendAttr(b, "xmlns:db", NSDialback)
	for _, a := range [...]struct{ n, v string }{{"from", h.From}, {"to", h.To}, {"id", h.ID}, {"version", ver}, {"xml:lang", h.Lang}} {
		if a.v != "" {
			b = appendAttr(b, a.n, a.v)
		}
	}
	b = append(b, '>')
	return w.write(b, true)
}

// WriteRaw writes b, which must be one or more complete elements (for
// example Element.Raw of a relayed stanza), and flushes. The bytes are not
// checked.
func (w *Writer) WriteRaw(b []byte) error { return w.write(b, true) }

// WriteRawNoFlush is WriteRaw without the flush, for batching; call Flush
// afterwards.
func (w *Writer) WriteRawNoFlush(b []byte) error { return w.write(b, false) }

// Flush writes buffered data to the transport.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dst == nil {
		return ErrNoTransport
	}
	return w.flushLocked()
}

// WriteElement serialises n and flushes. An element in jabber:server (or no
// an empty Space) gets no xmlns, relying on the stream's default namespace;
// an empty Space on a child means "the namespace in effect" (the parent's);
// NSDialback elements use the db: prefix and NSStreams elements the stream:
// prefix, both declared by WriteHeader; any other namespace is declared
// with xmlns on the element where it changes. Attributes in the xml
// namespace use xml:; other namespaced attributes get a generated prefix.
func (w *Writer) WriteElement(n *Node) error {
	if err := checkNode(n, 0); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	w.scr = AppendNode(w.scr[:0], n)
	return w.writeLocked(w.scr, true)
}

// checkNode rejects names that would make the output ill-formed.
func checkNode(n *Node, depth int) error {
	if n == nil {
		return errors.New("wire: WriteElement: nil node")
	}
	if depth > defaultMaxDepth {
		return fmt.Errorf("wire: WriteElement: nodes nested deeper than %d", defaultMaxDepth)
	}
	if !validNCName(n.Name.Local) {
		return fmt.Errorf("wire: WriteElement: invalid element name %q", n.Name.Local)
	}
	for _, a := range n.Attr {
		if !validNCName(a.Name.Local) || a.Name.Space == "" && a.Name.Local == "xmlns" {
			return fmt.Errorf("wire: WriteElement: invalid attribute name %q on <%s>", a.Name.Local, n.Name.Local)
		}
	}
	for _, c := range n.Children {
		if err := checkNode(c, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// validNCName is a conservative check for a name without a prefix: ASCII
// name characters, or any non-ASCII letter or digit.
func validNCName(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for i, c := range s {
		switch {
		case c < 0x80 && isNameStartASCII(byte(c)):
		case i > 0 && c < 0x80 && isNameASCII(byte(c)):
		case c >= 0x80 && (unicode.IsLetter(c) || i > 0 && unicode.IsDigit(c)):
		default:
			return false
		}
	}
	return true
}

// AppendNode appends the serialisation of n to dst, in a stream whose
// default namespace is jabber:server and which declares the db: and stream:
// prefixes (as WriteHeader does). See WriteElement.
func AppendNode(dst []byte, n *Node) []byte {
	return appendNode(dst, n, NSServer)
}

func appendNode(b []byte, n *Node, defNS string) []byte {
	space := n.Name.Space
	b = append(b, '<')
	switch space {
	case NSDialback:
		b = append(b, "db:"...)
	case NSStreams:
		b = append(b, "stream:"...)
	}
	b = append(b, n.Name.Local...)
	switch space {
	case NSDialback, NSStreams:
	case "":
		// Inherit the namespace in effect: convenient for building nodes.
	default:
		if space != defNS {
			b = appendAttr(b, "xmlns", space)
			defNS = space
		}
	}
	for i, a := range n.Attr {
		switch a.Name.Space {
		case "":
			b = appendAttr(b, a.Name.Local, a.Value)
		case NSXML, "xml":
			b = appendAttr(b, "xml:"+a.Name.Local, a.Value)
		default:
			p := "a" + string(rune('0'+i%10))
			b = appendAttr(b, "xmlns:"+p, a.Name.Space)
			b = appendAttr(b, p+":"+a.Name.Local, a.Value)
		}
	}
	if len(n.Children) == 0 && n.Text == "" {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	b = AppendEscaped(b, n.Text)
	for _, c := range n.Children {
		b = appendNode(b, c, defNS)
	}
	b = append(b, "</"...)
	switch space {
	case NSDialback:
		b = append(b, "db:"...)
	case NSStreams:
		b = append(b, "stream:"...)
	}
	b = append(b, n.Name.Local...)
	return append(b, '>')
}

// WriteStreamError writes <stream:error> with condition e (RFC 6120 §4.9),
// an optional human-readable <text/>, then </stream:stream>, and flushes.
// The output stream is closed afterwards (RFC 6120 §4.9.1.1); Close is then
// a no-op. The transport is not closed.
func (w *Writer) WriteStreamError(e stream.Error, text string) error {
	return w.writeStreamError(e, text, "")
}

// WriteError is WriteStreamError for an error returned by Reader: a
// *StreamError sends its condition and application condition (App);
// anything else sends undefined-condition. text is sent as is: do not pass
// err.Error(), which may reveal internals.
func (w *Writer) WriteError(err error, text string) error {
	var se *StreamError
	if errors.As(err, &se) {
		return w.writeStreamError(se.Cond, text, se.App)
	}
	return w.writeStreamError(stream.UndefinedCondition, text, "")
}

func (w *Writer) writeStreamError(e stream.Error, text, app string) error {
	cond := e.Err
	if cond == "" {
		cond = stream.UndefinedCondition.Err
	}
	b := make([]byte, 0, 256)
	b = append(b, "<stream:error><"...)
	b = append(b, cond...)
	b = append(b, " xmlns='"+NSStreamErrors+"'"...)
	if e.Content != "" {
		b = append(b, '>')
		b = AppendEscaped(b, e.Content)
		b = append(b, "</"...)
		b = append(b, cond...)
		b = append(b, '>')
	} else {
		b = append(b, "/>"...)
	}
	if text != "" {
		b = append(b, "<text xmlns='"+NSStreamErrors+"'>"...)
		b = AppendEscaped(b, text)
		b = append(b, "</text>"...)
	}
	b = append(b, app...)
	b = append(b, "</stream:error></stream:stream>"...)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	w.closed = true
	return w.writeLocked(b, true)
}

// WriteWhitespace writes a single space, the whitespace keepalive of RFC
// 6120 §4.6.1, and flushes.
func (w *Writer) WriteWhitespace() error { return w.write([]byte{' '}, true) }

// Close writes </stream:stream> (RFC 6120 §4.4) once and flushes; later
// calls, and a call after WriteStreamError, do nothing. It does not close
// the transport.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	if w.dst == nil {
		return ErrNoTransport
	}
	w.closed = true
	return w.writeLocked([]byte("</stream:stream>"), true)
}

// AppendEscaped appends s to dst escaped for use in XML character data and
// in attribute values quoted with either ' or ": the five special
// characters become &amp; &lt; &gt; &apos; &quot;, and tab, LF and CR
// become character references so that they survive attribute-value
// normalisation. Characters that XML 1.0 does not allow (control
// characters, invalid UTF-8, U+FFFE, U+FFFF) are replaced by U+FFFD rather
// than reported, so the output is always well-formed.
func AppendEscaped(dst []byte, s string) []byte {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		var esc string
		size := 1
		switch {
		case c == '&':
			esc = "&amp;"
		case c == '<':
			esc = "&lt;"
		case c == '>':
			esc = "&gt;"
		case c == '\'':
			esc = "&apos;"
		case c == '"':
			esc = "&quot;"
		case c == '\t':
			esc = "&#x9;"
		case c == '\n':
			esc = "&#xA;"
		case c == '\r':
			esc = "&#xD;"
		case c < 0x20:
			esc = "\uFFFD"
		case c < 0x80:
			i++
			continue
		default:
			var r rune
			r, size = utf8.DecodeRuneInString(s[i:])
			if (r == utf8.RuneError && size == 1) || !isChar(r) {
				esc = "\uFFFD"
			} else {
				i += size
				continue
			}
		}
		dst = append(dst, s[last:i]...)
		dst = append(dst, esc...)
		i += size
		last = i
	}
	return append(dst, s[last:]...)
}

// NewID returns a new stream or stanza id: 128 bits from crypto/rand as 32
// hex digits. RFC 6120 §4.7.3 requires stream ids to be unpredictable.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}
