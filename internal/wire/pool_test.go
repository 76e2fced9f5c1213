package wire_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/xmppfed/xmppfed/internal/wire"
)

// chunkReader serves data in reads of at most chunk bytes, never across
// the end of a unit (the lengths in units, like packets on a network), and
// records the size of every buffer it was asked to fill.
type chunkReader struct {
	data  []byte
	units []int // lengths of the units data is made of; nil: one unit
	chunk int
	sizes []int
}

func newChunkReader(units []string, chunk int) *chunkReader {
	c := &chunkReader{chunk: chunk}
	for _, u := range units {
		c.data = append(c.data, u...)
		c.units = append(c.units, len(u))
	}
	return c
}

func (c *chunkReader) Read(p []byte) (int, error) {
	c.sizes = append(c.sizes, len(p))
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), c.chunk, len(c.data))
	if len(c.units) > 0 {
		n = min(n, c.units[0])
		if c.units[0] -= n; c.units[0] == 0 {
			c.units = c.units[1:]
		}
	}
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// readAll reads the header and every element, returning the raw elements.
func readAll(t *testing.T, r *wire.Reader) []string {
	t.Helper()
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	var out []string
	for range 10000 {
		e, err := r.Next()
		if errors.Is(err, wire.ErrStreamEnd) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(e.Raw))
	}
	t.Fatal("too many elements")
	return nil
}

// TestReaderBufferPool checks that a Reader using a BufferPool yields the
// same elements as one without, however the input is split, and that once
// everything buffered is consumed it waits for input in a small read
// instead of holding a buffer.
func TestReaderBufferPool(t *testing.T) {
	big := "<message from='a@a.example' to='b@b.example'><body>" + strings.Repeat("x", 10000) + "</body></message>"
	in := []string{hdr, "<message from='a@a.example' to='b@b.example'><body>hi</body></message> \n",
		big, " ", "<iq from='a.example' to='b.example' id='1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>  ",
		big, "</stream:stream>"}
	var pool wire.BufferPool
	for _, chunk := range []int{1, 7, 64, 100, 4096, 1 << 20} {
		want := readAll(t, wire.NewReader(newChunkReader(in, chunk), wire.Limits{}))
		src := newChunkReader(in, chunk)
		r := wire.NewReader(src, wire.Limits{})
		r.SetBufferPool(&pool)
		got := readAll(t, r)
		if strings.Join(got, "|") != strings.Join(want, "|") || len(got) != 4 {
			t.Fatalf("chunk %d: got %d elements %.80q, want %d %.80q", chunk, len(got), got, len(want), want)
		}
		if chunk < 100 {
			continue
		}
		// Each unit ends a read here, so the read after it starts with an
		// empty buffer: it must be the small one (the first read too).
		small := 0
		for _, n := range src.sizes {
			if n <= 64 {
				small++
			}
		}
		if small < len(in)-1 {
			t.Errorf("chunk %d: %d small reads (sizes %v), want one per idle wait", chunk, small, src.sizes)
		}
	}
}

// TestReaderWithoutPoolKeepsBuffer is the control for the test above: a
// Reader without a pool reads into its full buffer.
func TestReaderWithoutPoolKeepsBuffer(t *testing.T) {
	src := newChunkReader([]string{hdr, "<message from='a@a.example' to='b@b.example'/>", "</stream:stream>"}, 4096)
	readAll(t, wire.NewReader(src, wire.Limits{}))
	for _, n := range src.sizes {
		if n <= 64 {
			t.Fatalf("read of %d bytes without a pool (sizes %v)", n, src.sizes)
		}
	}
}

// failWriter fails every write after the first n bytes.
type failWriter struct {
	bytes.Buffer
	n int
}

func (f *failWriter) Write(p []byte) (int, error) {
	if f.Len()+len(p) > f.n {
		return 0, errors.New("broken pipe")
	}
	return f.Buffer.Write(p)
}

// TestWriterBufferPool checks that a Writer using a BufferPool writes the
// same bytes as one without (small writes batched until Flush, large ones
// written through), and that transport errors stick until Reset.
func TestWriterBufferPool(t *testing.T) {
	var pool wire.BufferPool
	big := bytes.Repeat([]byte("<a/>"), 3000)
	run := func(w *wire.Writer) {
		for _, b := range [][]byte{[]byte("<x/>"), big, []byte("<y/>"), []byte("<z/>")} {
			if err := w.WriteRawNoFlush(b); err != nil {
				t.Fatal(err)
			}
		}
	}
	var plain, pooled bytes.Buffer
	wp := wire.NewWriter(&plain)
	run(wp)
	w := wire.NewWriter(&pooled)
	w.SetBufferPool(&pool)
	run(w)
	if pooled.Len() != 4+len(big) {
		t.Fatalf("before Flush %d bytes written, want %d (small writes buffered)", pooled.Len(), 4+len(big))
	}
	if err := wp.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain.Bytes(), pooled.Bytes()) || pooled.Len() != 12+len(big) {
		t.Fatalf("pooled output differs: %d vs %d bytes", pooled.Len(), plain.Len())
	}
	// After a flush the next batch borrows a buffer again.
	if err := w.WriteRaw([]byte("<w/>")); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(pooled.Bytes(), []byte("<z/><w/>")) {
		t.Fatalf("second batch not written: %q", pooled.Bytes()[pooled.Len()-8:])
	}

	fw := &failWriter{n: 5}
	w = wire.NewWriter(fw)
	w.SetBufferPool(&pool)
	if err := w.WriteRaw([]byte("<toolong/>")); err == nil {
		t.Fatal("write to a broken transport succeeded")
	}
	fw.n = 1 << 20
	if err := w.WriteRaw([]byte("<x/>")); err == nil {
		t.Fatal("transport error did not stick")
	}
	var fresh bytes.Buffer
	w.Reset(&fresh)
	if err := w.WriteRaw([]byte("<x/>")); err != nil || fresh.String() != "<x/>" {
		t.Fatalf("after Reset: %v, %q", err, fresh.String())
	}
}
