package certs

import (
	"testing"
)

// BenchmarkVerify measures one PKIX Verify with a 2-certificate chain
// (leaf + intermediate, root in Roots) and a name check.
func BenchmarkVerify(b *testing.B) {
	ca := newCA(b)
	inter, err := ca.NewIntermediate()
	if err != nil {
		b.Fatal(err)
	}
	c, err := inter.IssueDomain("example.org")
	if err != nil {
		b.Fatal(err)
	}
	chain := parseChain(b, c.Certificate)
	opts := VerifyOptions{Roots: ca.Pool()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify("example.org", chain, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseSAN measures the otherName-aware SAN parser alone.
func BenchmarkParseSAN(b *testing.B) {
	ca := newCA(b)
	c, err := ca.IssueDomain("example.org", "example.net")
	if err != nil {
		b.Fatal(err)
	}
	var der []byte
	for _, e := range c.Leaf.Extensions {
		if e.Id.String() == oidSAN {
			der = e.Value
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseSAN(der); err != nil {
			b.Fatal(err)
		}
	}
}
