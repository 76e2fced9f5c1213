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

func TestShared(t *testing.T) {
	a := tls.Certificate{Certificate: [][]byte{{1}}}
	b := tls.Certificate{Certificate: [][]byte{{2}}}
	builds := 0
	derive := func(base *tls.Config) *tls.Config {
		builds++
		c := base.Clone()
		c.ClientAuth = tls.RequestClientCert
		return c
	}
	var s Shared
	base := &tls.Config{Certificates: []tls.Certificate{a}}
	c1 := s.Get(base, derive)
	if c2 := s.Get(base, derive); c2 != c1 || builds != 1 {
		t.Fatalf("second Get: same config %v, %d builds; want the first, 1 build", c2 == c1, builds)
	}
	if c1.ClientAuth != tls.RequestClientCert || c1.Certificates[0].Certificate[0][0] != 1 {
		t.Fatalf("derived config: %+v", c1)
	}
	// Another certificate source: rebuilt.
	base.Certificates = []tls.Certificate{b}
	c3 := s.Get(base, derive)
	if c3 == c1 || builds != 2 || c3.Certificates[0].Certificate[0][0] != 2 {
		t.Fatalf("after Certificates changed: rebuilt %v (%d builds), certificate %v", c3 != c1, builds, c3.Certificates[0].Certificate)
	}
	other := &tls.Config{Certificates: base.Certificates}
	if c4 := s.Get(other, derive); c4 == c3 || builds != 3 {
		t.Fatalf("another base: rebuilt %v (%d builds)", c4 != c3, builds)
	}
	// A GetCertificate source (certs.Reloader) reloads without a rebuild:
	// the shared config calls it at every handshake.
	cur := &a
	reloading := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cur, nil }}
	c5 := s.Get(reloading, derive)
	cur = &b
	got, err := c5.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || got != &b {
		t.Fatalf("after a reload the shared config serves %v, %v; want the new certificate", got, err)
	}
	if c6 := s.Get(reloading, derive); c6 != c5 || builds != 4 {
		t.Fatalf("GetCertificate source: rebuilt (%d builds)", builds)
	}
	if c := s.Get(nil, func(*tls.Config) *tls.Config { builds++; return &tls.Config{} }); c == nil || builds != 5 {
		t.Fatalf("nil base: %v, %d builds", c, builds)
	}
}

func TestSharedConcurrent(t *testing.T) {
	var s Shared
	base := &tls.Config{}
	derive := func(b *tls.Config) *tls.Config { return b.Clone() }
	first := s.Get(base, derive)
	done := make(chan *tls.Config)
	for range 8 {
		go func() { done <- s.Get(base, derive) }()
	}
	for range 8 {
		if c := <-done; c != first {
			t.Fatal("concurrent Get built another config")
		}
	}
}
