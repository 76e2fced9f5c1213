package dnsname_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/xmppfed/xmppfed/internal/dnsname"
)

func TestNormalize(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	// 4 labels of 63 octets and 3 dots: 255 octets, too long; 3 labels
	// and a 61-octet one: 253, the longest accepted.
	name253 := long63 + "." + long63 + "." + long63 + "." + strings.Repeat("b", 61)
	for _, tc := range []struct {
		in, want string
		reason   string // substring of the error's reason; "" means success
	}{
		{"example.com", "example.com", ""},
		{"Example.COM", "example.com", ""},
		{"example.com.", "example.com", ""},
		{"localhost", "localhost", ""},
		{"a-b.example", "a-b.example", ""},
		{"1.2.3.4", "1.2.3.4", ""},
		{"bücher.example", "xn--bcher-kva.example", ""},
		{"BÜCHER.example", "xn--bcher-kva.example", ""},
		{"xn--bcher-kva.example", "xn--bcher-kva.example", ""},
		{"XN--BCHER-KVA.EXAMPLE", "xn--bcher-kva.example", ""},
		{name253, name253, ""},
		{name253 + ".", name253, ""},
		{long63 + ".com", long63 + ".com", ""},
		{"", "", "empty"},
		{".", "", "empty"},
		{"example.com..", "", "empty label"},
		{".example.com", "", "empty label"},
		{"a..b", "", "empty label"},
		{"\xff.example", "", "UTF-8"},
		{strings.Repeat("a", 64) + ".com", "", "63 octets"},
		{name253 + "x", "", "253 octets"},
		{"-a.example", "", "hyphen"},
		{"a-.example", "", "hyphen"},
		{"a_b.example", "", "IDNA"},
		{"a b.example", "", "IDNA"},
		{"a@b.example", "", "IDNA"},
		{"xn--zz.example", "", "IDNA"},
	} {
		got, err := dnsname.Normalize(tc.in)
		if tc.reason == "" {
			if err != nil || got != tc.want {
				t.Errorf("Normalize(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
			continue
		}
		var de *dnsname.Error
		if !errors.As(err, &de) {
			t.Errorf("Normalize(%q) = %q, %v; want an *Error", tc.in, got, err)
			continue
		}
		if !strings.Contains(de.Reason, tc.reason) || de.Domain != tc.in {
			t.Errorf("Normalize(%q): error %+v; want Domain %q and a reason with %q", tc.in, de, tc.in, tc.reason)
		}
		if !strings.Contains(err.Error(), "invalid domain") {
			t.Errorf("Normalize(%q): error %q does not say invalid domain", tc.in, err)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"", "example.org", true},
		{"*", "example.org", true},
		{"*.org", "example.org", true},
		{"*.org", "example.com", false},
		{"*.org", "org", false},
		{"*.ORG", "example.org", true},
		{"example.*", "example.org", true},
		{"ex*le.org", "example.org", true},
		{"ex*le.org", "exle.org", true},
		{"ex*le.org", "example.org.uk", false},
		{"*a*b*", "xxaxxbxx", true},
		{"*a*b*", "xxbxxaxx", false},
		{"example.org", "example.org", true},
		{"example.org", "example.org.", false},
		{"**", "", true},
		{"a", "", false},
		{strings.Repeat("*a", 20) + "b", strings.Repeat("a", 60), false},
	} {
		if got := dnsname.Match(tc.pattern, tc.name); got != tc.want {
			t.Errorf("Match(%q, %q) = %v; want %v", tc.pattern, tc.name, got, tc.want)
		}
	}
}

// FuzzNormalize checks that Normalize never panics, that what it returns
// is canonical (normalizing it again changes nothing), and what makes it
// canonical: lower-case LDH labels of at most 63 octets, at most 253 in
// all.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"example.com", "Bücher.Example.", "", ".", "a..b", "xn--bcher-kva.example", "\xff", "a_b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := dnsname.Normalize(in)
		if err != nil {
			if out != "" {
				t.Fatalf("Normalize(%q) = %q with error %v", in, out, err)
			}
			return
		}
		if !utf8.ValidString(in) {
			t.Fatalf("Normalize(%q) accepted invalid UTF-8", in)
		}
		if len(out) == 0 || len(out) > dnsname.MaxLength {
			t.Fatalf("Normalize(%q) = %q: bad length %d", in, out, len(out))
		}
		for label := range strings.SplitSeq(out, ".") {
			if label == "" || len(label) > dnsname.MaxLabelLength || label[0] == '-' || label[len(label)-1] == '-' {
				t.Fatalf("Normalize(%q) = %q: bad label %q", in, out, label)
			}
			for i := 0; i < len(label); i++ {
				c := label[i]
				if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
					t.Fatalf("Normalize(%q) = %q: byte %q", in, out, c)
				}
			}
		}
		again, err := dnsname.Normalize(out)
		if err != nil || again != out {
			t.Fatalf("Normalize(Normalize(%q)) = %q, %v; want %q", in, again, err, out)
		}
	})
}

func BenchmarkNormalizeASCII(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dnsname.Normalize("conference.fabrikam.com"); err != nil {
			b.Fatal(err)
		}
	}
}
