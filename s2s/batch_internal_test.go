package s2s

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/xmppfed/xmppfed/internal/wire"
)

// countingWriter counts the writes that reach the transport.
type countingWriter struct {
	mu     sync.Mutex
	writes int
	bytes  int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	c.bytes += len(p)
	return len(p), nil
}

func (c *countingWriter) counts() (writes, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes, c.bytes
}

// TestWriterBatchesABurst: stanzas queued while the writer is busy go out
// as one batch with one flush (issue 8: "writes batched, one flush per
// burst, not per stanza"): a burst of 1 000 queued stanzas reaches the
// transport in as many writes as its bytes fill the writer's buffer, not
// in 1 000.
func TestWriterBatchesABurst(t *testing.T) {
	s := &Server{Domains: []string{"a.example"}}
	s.start()
	defer s.Close()
	var cw countingWriter
	st := &stream{srv: s, dir: Outbound, local: "a.example", remote: "b.example", w: wire.NewWriter(&cw)}
	rt := s.newRunState(st)
	st.w.SetBufferPool(&s.run.bufs)
	const n = 1000
	items := make([]outItem, n)
	total := 0
	for i := range items {
		raw := fmt.Appendf(nil, "<message xmlns='jabber:server' from='u@a.example' to='v@b.example' id='%d'><body>burst</body></message>", i)
		items[i] = outItem{raw: raw}
		total += len(raw)
	}
	// The burst arrives while the stream is not writing yet (as while a
	// previous batch is being written): it queues.
	if !st.enqueue(items...) {
		t.Fatal("enqueue refused")
	}
	rt.mu.Lock()
	rt.running = true
	s.startWriterLocked(st)
	rt.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, b := cw.counts(); b == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the writer did not write the burst")
		}
		time.Sleep(time.Millisecond)
	}
	s.waitWriter(st)
	writes, _ := cw.counts()
	// One flush for the batch: the writer's buffer (4 KiB, the pool's)
	// fills and empties in between, never once per stanza.
	max := total/4096 + 2
	t.Logf("%d stanzas, %d bytes: %d writes (at most %d allowed; one per stanza would be %d)", n, total, writes, max, n)
	if writes > max {
		t.Fatalf("%d writes for a burst of %d stanzas (%d bytes): not batched", writes, n, total)
	}
}
