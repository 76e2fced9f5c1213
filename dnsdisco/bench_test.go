package dnsdisco_test

import (
	"context"
	"testing"
)

// BenchmarkLookupServerCached measures a LookupServer call answered
// entirely from the cache (SRV merge and weighted order recomputed).
func BenchmarkLookupServerCached(b *testing.B) {
	s, r := newServer(b)
	mergeFixture(s)
	ctx := context.Background()
	if _, err := r.LookupServer(ctx, "example.org"); err != nil {
		b.Fatal(err)
	}
	n := s.Queries()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.LookupServer(ctx, "example.org"); err != nil {
			b.Fatal(err)
		}
	}
	if s.Queries() != n {
		b.Fatalf("benchmark sent %d queries", s.Queries()-n)
	}
}
