package wire

import (
	"bytes"
	"testing"
)

// TestPoolReleasesBuffers checks the point of BufferPool: with a pool, a
// Writer holds no buffer after a flush and a Reader none once everything it
// read is consumed; without one both keep theirs.
func TestPoolReleasesBuffers(t *testing.T) {
	var pool BufferPool
	var out bytes.Buffer
	w := NewWriter(&out)
	w.SetBufferPool(&pool)
	if err := w.WriteRawNoFlush([]byte("<x/>")); err != nil {
		t.Fatal(err)
	}
	if w.buf == nil {
		t.Fatal("no buffer while bytes are pending")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.buf != nil {
		t.Fatalf("writer keeps a %d-byte buffer after Flush", cap(w.buf))
	}
	w2 := NewWriter(&out)
	if err := w2.WriteRaw([]byte("<x/>")); err != nil {
		t.Fatal(err)
	}
	if w2.buf == nil {
		t.Fatal("a writer without a pool drops its buffer")
	}

	in := `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'><message from='a@a.example' to='b@b.example'/>`
	r := NewReader(bytes.NewReader([]byte(in)), Limits{})
	r.SetBufferPool(&pool)
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err == nil {
		t.Fatal("read past the end")
	}
	if r.buf != nil {
		t.Fatalf("reader keeps a %d-byte buffer while waiting for input", cap(r.buf))
	}
}
