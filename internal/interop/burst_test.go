//go:build interop

package interop

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestInteropBurst sends bursts both ways between our server and a real
// Prosody over one SASL EXTERNAL stream each way: every stanza Send
// accepted must reach the Prosody user, in order (RFC 6120 §10.1: in-order
// processing on one stream), and every stanza the user sent must reach our
// Handler; nothing may be bounced. It catches stanzas lost between Send and
// the stream's writer under load, which one message per scenario cannot.
func TestInteropBurst(t *testing.T) {
	requireRoot(t, "prosody")
	const n = 500
	pki := NewPKI(t)
	StartDNS(t, Hosts())
	peer := StartProsody(t, pki, External)
	peer.Register(t, password, "alice")
	ours := StartOurs(t, pki, peer.Domain, External)
	alice := Login(t, peer.C2SAddr(), pki.RootCAs(), "alice@"+peer.Domain, password)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Establish the stream first, so the burst meets a running writer
	// rather than one queue flushed at connect time.
	if err := ours.SendMessage(ctx, "someone@"+OurDomain, "alice@"+peer.Domain, "burst-warmup"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Wait("burst-warmup", 30*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, ours.Diag())
	}
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("burst-out-%d", i)
		if err := ours.SendMessage(ctx, "someone@"+OurDomain, "alice@"+peer.Domain, out[i]); err != nil {
			t.Fatalf("Send #%d: %v", i, err)
		}
	}
	missing, inOrder := alice.WaitAll(out, 30*time.Second)
	if len(missing) > 0 || !inOrder || alice.Dropped() > 0 {
		t.Errorf("us -> %s: %d of %d missing (first %q), in order %v, client dropped %d; bounces %q; stats %+v",
			peer.Domain, len(missing), n, missing[:min(len(missing), 5)], inOrder, alice.Dropped(), ours.Bounces(), ours.Server.Stats())
	}

	in := make([]string, n)
	for i := range in {
		in[i] = fmt.Sprintf("burst-in-%d", i)
		if err := alice.Send(ctx, "user@"+OurDomain, in[i]); err != nil {
			t.Fatalf("client send #%d: %v", i, err)
		}
	}
	if missing := ours.WaitAll(in, 30*time.Second); len(missing) > 0 || ours.Dropped() > 0 {
		t.Errorf("%s -> us: %d of %d missing (first %q), handler dropped %d", peer.Domain, len(missing), n, missing[:min(len(missing), 5)], ours.Dropped())
	}
	if b := ours.Bounces(); len(b) > 0 {
		t.Errorf("bounces: %q", b)
	}
}
