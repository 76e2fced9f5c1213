package wire

import "sync"

// poolBufSize is the size of the buffers a BufferPool hands out: the
// Writer's buffer and the Reader's initial buffer.
const poolBufSize = 4096

// smallRead is the size of the Reader's inline buffer for the blocking read
// that ends an idle period when the Reader uses a BufferPool.
const smallRead = 64

// BufferPool lends read and write buffers to the Readers and Writers that
// use it (see Reader.SetBufferPool and Writer.SetBufferPool), so that a
// stream waiting for input, with nothing buffered either way, holds no
// buffer. One pool is meant to be shared by all the streams of one owner
// (for example one s2s server). The zero value is ready to use; a
// BufferPool is safe for concurrent use and must not be copied after first
// use.
type BufferPool struct {
	p sync.Pool // of *[poolBufSize]byte
}

// get returns an empty buffer of capacity poolBufSize.
func (p *BufferPool) get() []byte {
	if b, ok := p.p.Get().(*[poolBufSize]byte); ok {
		return b[:0]
	}
	return make([]byte, 0, poolBufSize)
}

// put gives b back to the pool when it is one of the pool's size (larger
// buffers, grown for a big stanza, are left to the garbage collector).
func (p *BufferPool) put(b []byte) {
	if cap(b) != poolBufSize {
		return
	}
	p.p.Put((*[poolBufSize]byte)(b[:poolBufSize]))
}
