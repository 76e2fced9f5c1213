package s2s

import (
	"context"
	"testing"
)

// BenchmarkNegotiate measures opening a fresh authenticated outbound
// stream over loopback, from TCP connect to authenticated: TLS 1.3 with
// SASL EXTERNAL, and TLS with a full dialback round trip (db:result, a
// verification connection with its own TLS, db:verify).
func BenchmarkNegotiate(b *testing.B) {
	for _, bc := range []struct {
		name  string
		rogue bool // a's certificate is untrusted at b: dialback, no shortcut
		want  AuthMethod
	}{
		{"tls13+external", false, AuthSASLExternal},
		{"tls+dialback", true, AuthDialback},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b)
			o := nodeOpt{domains: []string{"a.example"}}
			if bc.rogue {
				o.cert = e.rogueCert("a.example")
			}
			a := e.node(o)
			e.node(nodeOpt{domains: []string{"b.example"}})
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				st, err := a.srv.dialStream(ctx, "a.example", "b.example")
				if err != nil {
					b.Fatal(err)
				}
				if st.neg.auth != bc.want {
					b.Fatalf("auth %v", st.neg.auth)
				}
				_ = st.w.Close()
				_ = st.conn.Close()
				st.closeNeg(nil)
			}
		})
	}
}
