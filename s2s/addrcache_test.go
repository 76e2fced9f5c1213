package s2s

import (
	"fmt"
	"testing"
)

// The per-stream address cache gives what parseAddr gives, keeps only
// valid addresses, and evicts the oldest entry when full.
func TestAddrCache(t *testing.T) {
	var c addrCache
	for range 2 { // a miss, then a hit: the same answer
		j, d, err := c.parse("juliet@Capulet.EXAMPLE/balcony")
		if err != nil || j.String() != "juliet@capulet.example/balcony" || d != "capulet.example" {
			t.Fatalf("parse = %v, %q, %v", j, d, err)
		}
	}
	if _, _, err := c.parse("a@b@c"); err == nil {
		t.Fatal("invalid address accepted")
	}
	if _, _, err := c.parse("a@b@c"); err == nil {
		t.Fatal("invalid address accepted from the cache")
	}
	for _, k := range c.keys {
		if k == "a@b@c" {
			t.Fatal("invalid address cached")
		}
	}
	for i := range addrCacheSize + 1 {
		if _, _, err := c.parse(fmt.Sprintf("u%d@x.example", i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range c.keys {
		if k == "juliet@Capulet.EXAMPLE/balcony" || k == "u0@x.example" {
			t.Errorf("%q not evicted: keys %q", k, c.keys)
		}
	}
	// A nil cache parses every time.
	var nc *addrCache
	if j, d, err := nc.parse("x.example"); err != nil || j.String() != "x.example" || d != "x.example" {
		t.Errorf("nil cache: %v, %q, %v", j, d, err)
	}
	if _, _, err := nc.parse(""); err == nil {
		t.Error("empty address accepted")
	}
}
