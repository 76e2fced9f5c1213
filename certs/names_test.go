package certs

import (
	"strconv"
	"strings"
	"testing"
)

func TestNormalizeDomain(t *testing.T) {
	good := []struct{ in, want string }{
		{"example.org", "example.org"},
		{"Example.ORG.", "example.org"},
		{"bücher.example", "xn--bcher-kva.example"},
		{"BÜCHER.Example.", "xn--bcher-kva.example"},
		{"xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"localhost", "localhost"},
	}
	for _, c := range good {
		got, err := NormalizeDomain(c.in)
		if err != nil || got != c.want {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	bad := []string{"", ".", "a..b", "exa mple.org", "_xmpp-server.example.org", "*.example.org",
		"user@example.org", strings.Repeat("a", 64) + ".org", strings.Repeat("abcdefghi.", 26) + "org", "xn--zz.example", "\xaa.example"}
	for _, in := range bad {
		got, err := NormalizeDomain(in)
		if err == nil {
			t.Errorf("NormalizeDomain(%q) = %q, want error", in, got)
			continue
		}
		if !strings.Contains(err.Error(), "invalid domain") || !strings.Contains(err.Error(), strconv.Quote(in)) {
			t.Errorf("NormalizeDomain(%q) error %q does not name the domain", in, err)
		}
	}
}

func TestMatchDNSID(t *testing.T) {
	cases := []struct {
		presented, ref string
		want           bool
	}{
		{"example.org", "example.org", true},
		{"EXAMPLE.Org", "example.org", true},
		{"example.org.", "example.org", true},
		{"other.org", "example.org", false},
		{"*.example.org", "a.example.org", true},
		{"*.EXAMPLE.org", "a.example.org", true},
		{"*.example.org", "example.org", false},
		{"*.example.org", "a.b.example.org", false},
		{"f*.example.org", "foo.example.org", false},
		{"*oo.example.org", "foo.example.org", false},
		{"*.*.example.org", "a.b.example.org", false},
		{"a.*.example.org", "a.b.example.org", false},
		{"*.org", "example.org", false},
		{"*", "example", false},
		{"*.", "example.", false},
		{"", "example.org", false},
		{"exa*mple.org", "exa*mple.org", false},
		{"bücher.example", "xn--bcher-kva.example", false}, // DNS-IDs are A-labels
	}
	for _, c := range cases {
		if got := matchDNSID(c.presented, c.ref); got != c.want {
			t.Errorf("matchDNSID(%q, %q) = %v, want %v", c.presented, c.ref, got, c.want)
		}
	}
}

func TestMatchSRVID(t *testing.T) {
	cases := []struct {
		presented string
		want      bool
	}{
		{"_xmpp-server.example.org", true},
		{"_XMPP-Server.Example.ORG", true},
		{"_xmpp-server.example.org.", true},
		{"xmpp-server.example.org", false}, // RFC 4985 requires the underscore
		{"_xmpp-client.example.org", false},
		{"_xmpps-server.example.org", false},
		{"_xmpp-server.*.org", false},
		{"_xmpp-server.*.example.org", false},
		{"*.example.org", false},
		{"_xmpp-server.sub.example.org", false},
		{"_xmpp-server.", false},
		{"example.org", false},
	}
	for _, c := range cases {
		if got := matchSRVID(c.presented, "example.org"); got != c.want {
			t.Errorf("matchSRVID(%q) = %v, want %v", c.presented, got, c.want)
		}
	}
	if got := srvIDFor("example.org"); got != "_xmpp-server.example.org" {
		t.Errorf("srvIDFor = %q", got)
	}
}

func TestMatchXmppAddr(t *testing.T) {
	cases := []struct {
		presented, ref string
		want           bool
	}{
		{"example.org", "example.org", true},
		{"Example.ORG", "example.org", true},
		{"bücher.example", "xn--bcher-kva.example", true},
		{"BÜCHER.example", "xn--bcher-kva.example", true},
		{"user@example.org", "example.org", false},
		{"example.org/resource", "example.org", false},
		{"user@example.org/res", "example.org", false},
		{"*.example.org", "a.example.org", false},
		{"sub.example.org", "example.org", false},
		{"", "example.org", false},
	}
	for _, c := range cases {
		if got := matchXmppAddr(c.presented, c.ref); got != c.want {
			t.Errorf("matchXmppAddr(%q, %q) = %v, want %v", c.presented, c.ref, got, c.want)
		}
	}
}
