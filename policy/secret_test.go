package policy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/xmppfed/xmppfed/policy"
)

// TestSecret checks REFERENCE §5.3 #35: generated once, at least 32
// bytes, persisted, and never printed or logged.
func TestSecret(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	text := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st := policy.NewMemStore(nil)
	p, err := policy.New(ctx, st, &policy.Options{Logger: text})
	if err != nil {
		t.Fatal(err)
	}
	secret := p.Gateway().DialbackSecret.Bytes()
	if len(secret) < 32 || bytes.Count(secret, []byte{0}) == len(secret) {
		t.Fatalf("generated secret of %d bytes", len(secret))
	}
	stored, _ := st.Load(ctx)
	if !bytes.Equal(stored.Gateway.DialbackSecret.Bytes(), secret) || st.Saves() != 1 {
		t.Fatalf("secret not persisted (%d saves)", st.Saves())
	}
	// Once: a second Policy over the same store keeps it.
	p2, err := policy.New(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p2.Gateway().DialbackSecret.Bytes(), secret) || st.Saves() != 1 {
		t.Error("a second New generated another secret")
	}
	// A configured secret is kept, and SetGateway with none keeps it.
	given := []byte("0123456789abcdef0123456789abcdef")
	p3, _ := newPolicy(t, &policy.Config{Gateway: policy.Gateway{DialbackSecret: policy.NewSecret(given)}}, nil)
	apply(t, p3, policy.SetGateway(policy.Gateway{ConnectionLimit: 50}))
	if !bytes.Equal(p3.Gateway().DialbackSecret.Bytes(), given) {
		t.Error("SetGateway without a secret replaced it")
	}

	// Never printed, in any verb, from any value that holds it.
	g, c := p.Gateway(), p.Config()
	hexSecret := fmt.Sprintf("%x", secret)
	for _, v := range []any{g, &g, c, *c, g.DialbackSecret} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, string(secret)) || strings.Contains(out, hexSecret) || strings.Contains(out, fmt.Sprint(secret)) {
				t.Errorf("%s of %T reveals the secret", verb, v)
			}
			if !strings.Contains(out, "[redacted]") {
				t.Errorf("%s of %T: %q does not say [redacted]", verb, v, out)
			}
		}
	}
	js, err := json.Marshal(c)
	if err != nil || strings.Contains(string(js), hexSecret) || !strings.Contains(string(js), `"[redacted]"`) {
		t.Errorf("JSON %s, %v", js, err)
	}

	// Never logged, by the policy or by a host logging the values.
	var jsonLogs bytes.Buffer
	jl := slog.New(slog.NewJSONHandler(&jsonLogs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	jl.Info("config", "gateway", g, "config", c)
	text.Info("config", "gateway", g, "config", c)
	p4, err := policy.New(ctx, policy.NewMemStore(nil), &policy.Options{Logger: jl})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, p4, policy.AddPartner(policy.Partner{Domain: "a.com"}), policy.SetGateway(policy.Gateway{ConnectionLimit: 90}))
	secret4 := p4.Gateway().DialbackSecret.Bytes()
	for name, out := range map[string]string{"text": logs.String(), "json": jsonLogs.String()} {
		for _, s := range [][]byte{secret, secret4} {
			if strings.Contains(out, string(s)) || strings.Contains(out, fmt.Sprintf("%x", s)) || strings.Contains(out, fmt.Sprint(s)) {
				t.Errorf("%s log reveals a secret:\n%s", name, out)
			}
		}
	}
	if !strings.Contains(logs.String(), "generated") || !strings.Contains(jsonLogs.String(), "configuration changed") {
		t.Errorf("missing log lines:\n%s\n%s", logs.String(), jsonLogs.String())
	}
}
