package tlscert

import (
	"crypto/tls"
	"errors"
	"testing"
)

func TestFor(t *testing.T) {
	a := tls.Certificate{Certificate: [][]byte{{1}}}
	b := tls.Certificate{Certificate: [][]byte{{2}}}
	byName := func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if hi.ServerName == "a.example" {
			return &a, nil
		}
		return nil, errors.New("no certificate for " + hi.ServerName)
	}
	for _, tc := range []struct {
		name   string
		cfg    *tls.Config
		domain string
		want   *tls.Certificate
	}{
		{"nil config", nil, "a.example", nil},
		{"empty config", &tls.Config{}, "a.example", nil},
		{"GetCertificate by name", &tls.Config{GetCertificate: byName}, "a.example", &a},
		{"GetCertificate fails, no fallback", &tls.Config{GetCertificate: byName}, "b.example", nil},
		{"GetCertificate fails, Certificates[0]", &tls.Config{GetCertificate: byName, Certificates: []tls.Certificate{b}}, "b.example", &b},
		{"Certificates only", &tls.Config{Certificates: []tls.Certificate{b, a}}, "a.example", &b},
	} {
		got := For(tc.cfg, tc.domain)
		switch {
		case tc.want == nil && got != nil:
			t.Errorf("%s: got %v, want nil", tc.name, got.Certificate)
		case tc.want != nil && (got == nil || got.Certificate[0][0] != tc.want.Certificate[0][0]):
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want.Certificate)
		}
	}
}
