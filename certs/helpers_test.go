package certs

import (
	"crypto/x509"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newCA(t testing.TB) *TestCA {
	t.Helper()
	ca, err := NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// chainOf issues l from ca and returns the parsed chain.
func chainOf(t testing.TB, ca *TestCA, l Leaf) []*x509.Certificate {
	t.Helper()
	c, err := ca.Issue(l)
	if err != nil {
		t.Fatal(err)
	}
	return parseChain(t, c.Certificate)
}

func parseChain(t testing.TB, ders [][]byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}
