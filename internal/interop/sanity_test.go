//go:build interop

package interop

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const password = "interop-secret-1"

// TestInteropProsodyEjabberd proves the harness before any xmppfed code is
// involved: a Prosody user's message reaches an ejabberd user over real
// s2s (SASL EXTERNAL, both trusting the test CA) and back, through the
// harness DNS server.
func TestInteropProsodyEjabberd(t *testing.T) {
	requireRoot(t, "prosody")
	requireRoot(t, "ejabberdctl")
	pki := NewPKI(t)
	StartDNS(t, Hosts())
	pro := StartProsody(t, pki, External)
	ej := StartEjabberd(t, pki, External)
	pro.Register(t, password, "alice")
	ej.Register(t, password, "bob")
	alice := Login(t, pro.C2SAddr(), pki.RootCAs(), "alice@prosody.test", password)
	bob := Login(t, ej.C2SAddr(), pki.RootCAs(), "bob@ejabberd.test", password)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := alice.Send(ctx, "bob@ejabberd.test", "hello-ejabberd"); err != nil {
		t.Fatal(err)
	}
	m, err := bob.Wait("hello-ejabberd", 30*time.Second)
	if err != nil {
		t.Fatalf("%v\nprosody log:\n%s\nejabberd log:\n%s", err, pro.Log(), ej.Log())
	}
	if got := m.From.Bare().String(); got != "alice@prosody.test" {
		t.Errorf("message from %q, want alice@prosody.test", got)
	}
	if err := bob.Send(ctx, "alice@prosody.test", "hello-prosody"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Wait("hello-prosody", 30*time.Second); err != nil {
		t.Fatalf("%v\nprosody log:\n%s\nejabberd log:\n%s", err, pro.Log(), ej.Log())
	}
}
