package certs

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"strings"
	"testing"
	"time"

	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// upnOID is the Microsoft User Principal Name otherName type-id.
var upnOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 20, 2, 3}

func TestVerifyIdentities(t *testing.T) {
	ca := newCA(t)
	cases := []struct {
		name     string
		leaf     Leaf
		entries  []sanEntry // used instead of leaf names when set
		domain   string
		opts     VerifyOptions
		want     Identity // IdentityNone: expect *IdentityError
		wantDoms string   // Result.Domain
	}{
		{name: "dns-id exact", leaf: Leaf{DNSNames: []string{"example.org"}}, domain: "example.org",
			want: Identity{DNSID, "example.org"}},
		{name: "dns-id case and trailing dot of reference", leaf: Leaf{DNSNames: []string{"EXAMPLE.org"}}, domain: "Example.ORG.",
			want: Identity{DNSID, "EXAMPLE.org"}},
		{name: "dns-id A-label vs U-label reference", leaf: Leaf{DNSNames: []string{"xn--bcher-kva.example"}}, domain: "bücher.example",
			want: Identity{DNSID, "xn--bcher-kva.example"}, wantDoms: "xn--bcher-kva.example"},
		{name: "dns-id other", leaf: Leaf{DNSNames: []string{"other.org"}}, domain: "example.org"},
		{name: "wildcard one label", leaf: Leaf{DNSNames: []string{"*.example.org"}}, domain: "chat.example.org",
			want: Identity{DNSID, "*.example.org"}},
		{name: "wildcard not apex", leaf: Leaf{DNSNames: []string{"*.example.org"}}, domain: "example.org"},
		{name: "wildcard not two labels", leaf: Leaf{DNSNames: []string{"*.example.org"}}, domain: "a.b.example.org"},
		{name: "partial wildcard", leaf: Leaf{DNSNames: []string{"c*.example.org"}}, domain: "chat.example.org"},
		{name: "public suffix wildcard", leaf: Leaf{DNSNames: []string{"*.org"}}, domain: "example.org"},
		{name: "srv-id", leaf: Leaf{SRVNames: []string{"_xmpp-server.example.org"}}, domain: "example.org",
			want: Identity{SRVID, "_xmpp-server.example.org"}},
		{name: "srv-id client service", leaf: Leaf{SRVNames: []string{"_xmpp-client.example.org"}}, domain: "example.org"},
		{name: "srv-id without underscore", leaf: Leaf{SRVNames: []string{"xmpp-server.example.org"}}, domain: "example.org"},
		{name: "srv-id wildcard", leaf: Leaf{SRVNames: []string{"_xmpp-server.*.org"}}, domain: "example.org"},
		{name: "srv-id preferred over dns-id", leaf: Leaf{SRVNames: []string{"_xmpp-server.example.org"}, DNSNames: []string{"example.org"}},
			domain: "example.org", want: Identity{SRVID, "_xmpp-server.example.org"}},
		{name: "xmppaddr", leaf: Leaf{XMPPAddrs: []string{"example.org"}}, domain: "example.org",
			want: Identity{XmppAddr, "example.org"}},
		{name: "xmppaddr U-label", leaf: Leaf{XMPPAddrs: []string{"Bücher.example"}}, domain: "xn--bcher-kva.example",
			want: Identity{XmppAddr, "Bücher.example"}},
		{name: "xmppaddr with localpart", leaf: Leaf{XMPPAddrs: []string{"user@example.org"}}, domain: "example.org"},
		{name: "xmppaddr with resource", leaf: Leaf{XMPPAddrs: []string{"example.org/res"}}, domain: "example.org"},
		{name: "cn ignored by default", leaf: Leaf{CommonName: "example.org"}, domain: "example.org"},
		{name: "cn allowed", leaf: Leaf{CommonName: "example.org"}, domain: "example.org",
			opts: VerifyOptions{AllowCommonName: true}, want: Identity{CommonName, "example.org"}},
		{name: "cn ignored when a SAN identity exists", leaf: Leaf{CommonName: "example.org", DNSNames: []string{"other.org"}},
			domain: "example.org", opts: VerifyOptions{AllowCommonName: true}},
		{name: "cn ignored when an XmppAddr exists", leaf: Leaf{CommonName: "example.org", XMPPAddrs: []string{"other.org"}},
			domain: "example.org", opts: VerifyOptions{AllowCommonName: true}},
		{name: "secure name as dns-id", leaf: Leaf{DNSNames: []string{"xmpp.host.net"}}, domain: "example.org",
			opts: VerifyOptions{SecureNames: []string{"XMPP.host.net."}}, want: Identity{DNSID, "xmpp.host.net"}},
		{name: "no secure name", leaf: Leaf{DNSNames: []string{"xmpp.host.net"}}, domain: "example.org"},
		{name: "secure name not an srv-id reference", leaf: Leaf{SRVNames: []string{"_xmpp-server.xmpp.host.net"}}, domain: "example.org",
			opts: VerifyOptions{SecureNames: []string{"xmpp.host.net"}}},
		{name: "UPN otherName with the domain is not an XmppAddr", domain: "example.org",
			entries: []sanEntry{{oid: upnOID, tag: cbasn1.UTF8String, value: "example.org"}}},
		{name: "IA5String otherName of another type is not an SRV-ID", domain: "example.org",
			entries: []sanEntry{{oid: upnOID, tag: cbasn1.IA5String, value: "_xmpp-server.example.org"}}},
		{name: "UPN skipped, real XmppAddr matches", domain: "example.org",
			entries: []sanEntry{{oid: upnOID, tag: cbasn1.UTF8String, value: "example.org"},
				{oid: mustOID(oidXMPPAddr), tag: cbasn1.UTF8String, value: "example.org"}},
			want: Identity{XmppAddr, "example.org"}},
		{name: "no identities", domain: "example.org"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var chain []*x509.Certificate
			if c.entries != nil {
				tc, err := ca.issue(c.leaf, c.entries)
				if err != nil {
					t.Fatal(err)
				}
				chain = parseChain(t, tc.Certificate)
			} else {
				chain = chainOf(t, ca, c.leaf)
			}
			opts := c.opts
			opts.Roots = ca.Pool()
			res, err := Verify(c.domain, chain, opts)
			if c.want.Type == IdentityNone {
				var ie *IdentityError
				if !errors.As(err, &ie) {
					t.Fatalf("Verify = %+v, %v; want *IdentityError", res, err)
				}
				for _, id := range ie.Presented {
					if (id.Type == XmppAddr || id.Type == SRVID) && c.entries != nil {
						t.Errorf("foreign otherName presented as %v", id)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if res.Matched != c.want {
				t.Errorf("Matched = %v, want %v", res.Matched, c.want)
			}
			wantDom := c.wantDoms
			if wantDom == "" {
				wantDom, _ = NormalizeDomain(c.domain)
			}
			if res.Domain != wantDom || res.DANE || len(res.Chain) != 2 || !res.Chain[1].Equal(ca.Certificate()) {
				t.Errorf("Result = %+v, want domain %q, PKIX chain to the root", res, wantDom)
			}
		})
	}
}

func TestVerifyBadInput(t *testing.T) {
	ca := newCA(t)
	chain := chainOf(t, ca, Leaf{DNSNames: []string{"example.org"}})
	if _, err := Verify("example.org", nil, VerifyOptions{}); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("nil chain: %v", err)
	}
	if _, err := Verify("example.org", []*x509.Certificate{}, VerifyOptions{}); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("empty chain: %v", err)
	}
	if _, err := Verify("example.org", []*x509.Certificate{nil}, VerifyOptions{}); err == nil || !strings.Contains(err.Error(), "chain[0] is nil") {
		t.Errorf("nil cert: %v", err)
	}
	if _, err := Verify("exa mple.org", chain, VerifyOptions{Roots: ca.Pool()}); err == nil || !strings.Contains(err.Error(), `"exa mple.org"`) {
		t.Errorf("bad domain: %v", err)
	}
	_, err := Verify("example.org", chain, VerifyOptions{Roots: ca.Pool(), SecureNames: []string{"ok.example", "bad..name"}})
	if err == nil || !strings.Contains(err.Error(), "SecureNames") || !strings.Contains(err.Error(), `"bad..name"`) {
		t.Errorf("bad secure name: %v", err)
	}
}

func TestVerifyChain(t *testing.T) {
	ca := newCA(t)
	inter, err := ca.NewIntermediate()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	names := Leaf{DNSNames: []string{"example.org"}}
	with := func(f func(*Leaf)) Leaf { l := names; f(&l); return l }

	ok := []struct {
		name string
		leaf Leaf
	}{
		{"serverAuth only", with(func(l *Leaf) { l.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} })},
		{"clientAuth only", with(func(l *Leaf) { l.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} })},
		{"no EKU extension", with(func(l *Leaf) { l.ExtKeyUsage = []x509.ExtKeyUsage{} })},
	}
	for _, c := range ok {
		if _, err := Verify("example.org", chainOf(t, ca, c.leaf), VerifyOptions{Roots: ca.Pool()}); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}

	bad := []struct {
		name   string
		chain  []*x509.Certificate
		opts   VerifyOptions
		reason ChainReason
		msg    string
	}{
		{"expired", chainOf(t, ca, with(func(l *Leaf) { l.NotBefore, l.NotAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour) })),
			VerifyOptions{Roots: ca.Pool()}, Expired, "expired on"},
		{"not yet valid", chainOf(t, ca, with(func(l *Leaf) { l.NotBefore, l.NotAfter = now.Add(24*time.Hour), now.Add(48*time.Hour) })),
			VerifyOptions{Roots: ca.Pool()}, NotYetValid, "not valid before"},
		{"self-signed", chainOf(t, ca, with(func(l *Leaf) { l.SelfSigned = true })),
			VerifyOptions{Roots: ca.Pool()}, UnknownIssuer, "not a trusted authority"},
		{"other CA", chainOf(t, ca, names), VerifyOptions{Roots: newCA(t).Pool()}, UnknownIssuer, "xmppfed test root"},
		{"emailProtection only", chainOf(t, ca, with(func(l *Leaf) { l.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection} })),
			VerifyOptions{Roots: ca.Pool()}, NotAuthorizedForUse, "not authorized for TLS"},
		{"missing intermediate", chainOf(t, inter, names)[:1], VerifyOptions{Roots: ca.Pool()}, UnknownIssuer, "intermediate"},
		{"checked at CurrentTime", chainOf(t, ca, names), VerifyOptions{Roots: ca.Pool(), CurrentTime: now.Add(72 * time.Hour)}, Expired, "expired on"},
	}
	for _, c := range bad {
		_, err := Verify("example.org", c.chain, c.opts)
		var ce *ChainError
		if !errors.As(err, &ce) {
			t.Errorf("%s: err = %v, want *ChainError", c.name, err)
			continue
		}
		if ce.Reason != c.reason || !strings.Contains(err.Error(), c.msg) || ce.Subject == "" || ce.Err == nil {
			t.Errorf("%s: reason %v, %q; want %v containing %q", c.name, ce.Reason, err, c.reason, c.msg)
		}
		if errors.Unwrap(err) != ce.Err {
			t.Errorf("%s: Unwrap does not return Err", c.name)
		}
	}

	// Intermediates: from the presented chain, or from opts.Intermediates.
	chain := chainOf(t, inter, names)
	if res, err := Verify("example.org", chain, VerifyOptions{Roots: ca.Pool()}); err != nil || len(res.Chain) != 3 {
		t.Errorf("with intermediate in chain: %v", err)
	}
	extra := newPool(chain[1])
	if _, err := Verify("example.org", chain[:1], VerifyOptions{Roots: ca.Pool(), Intermediates: extra}); err != nil {
		t.Errorf("with opts.Intermediates: %v", err)
	}
	// The caller's pool is not modified by adding chain[1:]: after verifying
	// a chain through a second intermediate with extra, the leaf alone must
	// still fail with extra.
	inter2, err := ca.NewIntermediate()
	if err != nil {
		t.Fatal(err)
	}
	other := chainOf(t, inter2, names)
	if _, err := Verify("example.org", other, VerifyOptions{Roots: ca.Pool(), Intermediates: extra}); err != nil {
		t.Fatal(err)
	}
	var ce *ChainError
	if _, err := Verify("example.org", other[:1], VerifyOptions{Roots: ca.Pool(), Intermediates: extra}); !errors.As(err, &ce) || ce.Reason != UnknownIssuer {
		t.Errorf("opts.Intermediates was modified: %v", err)
	}
}

func newPool(cs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cs {
		p.AddCert(c)
	}
	return p
}

func TestErrorMessages(t *testing.T) {
	ie := &IdentityError{Domain: "b.example", Presented: []Identity{{DNSID, "a.example"}, {SRVID, "_xmpp-server.a.example"}}}
	if got, want := ie.Error(), `certs: certificate is not valid for "b.example"; it names DNS-ID "a.example", SRV-ID "_xmpp-server.a.example"`; got != want {
		t.Errorf("IdentityError:\n got %s\nwant %s", got, want)
	}
	ie = &IdentityError{Domain: "b.example"}
	if got, want := ie.Error(), `certs: certificate is not valid for "b.example"; it names no identities at all`; got != want {
		t.Errorf("IdentityError empty:\n got %s\nwant %s", got, want)
	}
	ce := &ChainError{Reason: Expired, Subject: "CN=a.example", NotAfter: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC),
		Now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	if got, want := ce.Error(), `certs: certificate "CN=a.example" expired on 2026-01-02T00:00:00Z (now 2026-11-25T12:00:00Z)`; got != want {
		t.Errorf("ChainError:\n got %s\nwant %s", got, want)
	}
	if got := (&DANEError{Records: 2, Reason: "x"}).Error(); got != "certs: none of the 2 usable TLSA records matched: x" {
		t.Errorf("DANEError: %s", got)
	}
	for ty, s := range map[IdentityType]string{IdentityNone: "none", SRVID: "SRV-ID", XmppAddr: "XmppAddr", DNSID: "DNS-ID",
		CommonName: "CN", DANEEE: "DANE-EE", 99: "IdentityType(99)"} {
		if ty.String() != s {
			t.Errorf("IdentityType(%d).String() = %q, want %q", ty, ty.String(), s)
		}
	}
	if Expired.String() != "expired" || ChainReason(99).String() != "ChainReason(99)" {
		t.Errorf("ChainReason.String broken")
	}
}

func tlsaFor(usage, sel, mt uint8, c *x509.Certificate) TLSA {
	data := c.Raw
	if sel == 1 {
		data = c.RawSubjectPublicKeyInfo
	}
	switch mt {
	case 1:
		h := sha256.Sum256(data)
		data = h[:]
	case 2:
		h := sha512.Sum512(data)
		data = h[:]
	}
	return TLSA{Usage: usage, Selector: sel, MatchingType: mt, Data: append([]byte(nil), data...)}
}

func TestDANE(t *testing.T) {
	ca := newCA(t)
	now := time.Now()
	// A self-signed, expired leaf for the wrong name: DANE-EE ignores all that (RFC 7671 §5.1).
	odd := chainOf(t, ca, Leaf{DNSNames: []string{"elsewhere.example"}, SelfSigned: true,
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
	for sel := uint8(0); sel <= 1; sel++ {
		for mt := uint8(0); mt <= 2; mt++ {
			rec := tlsaFor(3, sel, mt, odd[0])
			res, err := Verify("example.org", odd, VerifyOptions{TLSA: []TLSA{rec}})
			if err != nil || !res.DANE || res.Matched.Type != DANEEE || res.Chain != nil || res.Domain != "example.org" {
				t.Errorf("DANE-EE %d %d: %+v, %v", sel, mt, res, err)
			}
			// A wrong digest of the right length must not match: no PKIX fallback.
			rec.Data[0] ^= 0xff
			_, err = Verify("example.org", odd, VerifyOptions{TLSA: []TLSA{rec}})
			var de *DANEError
			if !errors.As(err, &de) || de.Records != 1 {
				t.Errorf("DANE-EE %d %d tampered: %v, want *DANEError", sel, mt, err)
			}
		}
	}

	// A PKIX-valid chain is refused when usable records exist and none match.
	good := chainOf(t, ca, Leaf{DNSNames: []string{"example.org"}})
	other := chainOf(t, ca, Leaf{DNSNames: []string{"example.org"}})
	_, err := Verify("example.org", good, VerifyOptions{Roots: ca.Pool(), TLSA: []TLSA{tlsaFor(3, 1, 1, other[0])}})
	if !errors.As(err, new(*DANEError)) {
		t.Errorf("non-matching usable record: %v, want *DANEError", err)
	}

	// Unusable records are ignored: PKIX decides.
	unusable := []TLSA{
		tlsaFor(0, 0, 1, good[0]), tlsaFor(1, 1, 1, good[0]),
		{Usage: 4, Selector: 1, MatchingType: 1, Data: make([]byte, 32)},
		{Usage: 3, Selector: 2, MatchingType: 1, Data: make([]byte, 32)},
		{Usage: 3, Selector: 1, MatchingType: 3, Data: make([]byte, 32)},
		{Usage: 3, Selector: 1, MatchingType: 1, Data: make([]byte, 31)},
		{Usage: 3, Selector: 1, MatchingType: 2, Data: make([]byte, 32)},
		{Usage: 3, Selector: 0, MatchingType: 0},
	}
	res, err := Verify("example.org", good, VerifyOptions{Roots: ca.Pool(), TLSA: unusable})
	if err != nil || res.DANE || res.Matched.Type != DNSID {
		t.Errorf("unusable records: %+v, %v; want PKIX success", res, err)
	}
	if _, err := Verify("example.org", odd, VerifyOptions{TLSA: unusable}); !errors.As(err, new(*ChainError)) {
		t.Errorf("unusable records, bad chain: %v; want *ChainError", err)
	}
}

func TestDANETA(t *testing.T) {
	// The CA is NOT in Roots: only the TLSA record makes it a trust anchor.
	ca := newCA(t)
	inter, err := ca.NewIntermediate()
	if err != nil {
		t.Fatal(err)
	}
	chain := chainOf(t, inter, Leaf{DNSNames: []string{"example.org"}})
	noRoots := x509.NewCertPool()
	ta := tlsaFor(2, 1, 1, chain[1])

	res, err := Verify("example.org", chain, VerifyOptions{Roots: noRoots, TLSA: []TLSA{ta}})
	if err != nil || !res.DANE || res.Matched != (Identity{DNSID, "example.org"}) || len(res.Chain) != 2 {
		t.Fatalf("DANE-TA: %+v, %v", res, err)
	}
	// Full-certificate selector, SHA-512.
	if _, err := Verify("example.org", chain, VerifyOptions{Roots: noRoots, TLSA: []TLSA{tlsaFor(2, 0, 2, chain[1])}}); err != nil {
		t.Errorf("DANE-TA 2 0 2: %v", err)
	}
	// The name check still applies (RFC 7671 §5.2).
	if _, err := Verify("other.org", chain, VerifyOptions{Roots: noRoots, TLSA: []TLSA{ta}}); !errors.As(err, new(*IdentityError)) {
		t.Errorf("DANE-TA wrong name: %v, want *IdentityError", err)
	}
	// A record for the root, which the peer did not send, matches nothing in the chain.
	if _, err := Verify("example.org", chain, VerifyOptions{Roots: ca.Pool(), TLSA: []TLSA{tlsaFor(2, 1, 1, ca.Certificate())}}); !errors.As(err, new(*DANEError)) {
		t.Errorf("DANE-TA not in chain: %v, want *DANEError", err)
	}
	// The chain up to the anchor must validate: an expired leaf fails.
	now := time.Now()
	expired := chainOf(t, inter, Leaf{DNSNames: []string{"example.org"}, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)})
	var ce *ChainError
	if _, err := Verify("example.org", expired, VerifyOptions{Roots: noRoots, TLSA: []TLSA{ta}}); !errors.As(err, &ce) || ce.Reason != Expired {
		t.Errorf("DANE-TA expired leaf: %v, want Expired *ChainError", err)
	}
	// A leaf signed by someone else does not chain to the pinned anchor.
	foreign := chainOf(t, newCA(t), Leaf{DNSNames: []string{"example.org"}})
	foreign = append(foreign, chain[1])
	if _, err := Verify("example.org", foreign, VerifyOptions{Roots: noRoots, TLSA: []TLSA{ta}}); !errors.As(err, &ce) || ce.Reason != UnknownIssuer {
		t.Errorf("DANE-TA foreign leaf: %v, want UnknownIssuer *ChainError", err)
	}
}

func TestIdentities(t *testing.T) {
	ca := newCA(t)
	c, err := ca.IssueDomain("example.org", "bücher.example")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := Identities(c.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	want := []Identity{{DNSID, "example.org"}, {DNSID, "xn--bcher-kva.example"}, {SRVID, "_xmpp-server.example.org"},
		{SRVID, "_xmpp-server.xn--bcher-kva.example"}, {XmppAddr, "example.org"}, {XmppAddr, "bücher.example"}}
	if len(ids) != len(want) {
		t.Fatalf("Identities = %v, want %v", ids, want)
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Errorf("Identities[%d] = %v, want %v", i, ids[i], want[i])
		}
	}
	// Go's own parser still sees the dNSNames in our hand-built SAN.
	if got := c.Leaf.DNSNames; len(got) != 2 || got[0] != "example.org" || got[1] != "xn--bcher-kva.example" {
		t.Errorf("x509 DNSNames = %v", got)
	}
	// CN comes last.
	cn := chainOf(t, ca, Leaf{CommonName: "cn.example", DNSNames: []string{"dns.example"}})[0]
	ids, err = Identities(cn)
	if err != nil || len(ids) != 2 || ids[1] != (Identity{CommonName, "cn.example"}) {
		t.Errorf("Identities with CN = %v, %v", ids, err)
	}
	if _, err := Identities(nil); err == nil {
		t.Error("Identities(nil) did not fail")
	}
}

func TestMalformedOtherNames(t *testing.T) {
	ca := newCA(t)
	cases := []struct {
		name  string
		entry sanEntry
	}{
		{"XmppAddr as IA5String", sanEntry{oid: mustOID(oidXMPPAddr), tag: cbasn1.IA5String, value: "example.org"}},
		{"XmppAddr invalid UTF-8", sanEntry{oid: mustOID(oidXMPPAddr), tag: cbasn1.UTF8String, value: "example.org\xff"}},
		{"SRVName as UTF8String", sanEntry{oid: mustOID(oidDNSSRV), tag: cbasn1.UTF8String, value: "_xmpp-server.example.org"}},
		{"SRVName non-ASCII", sanEntry{oid: mustOID(oidDNSSRV), tag: cbasn1.IA5String, value: "_xmpp-server.bücher.example"}},
		{"SRVName empty", sanEntry{oid: mustOID(oidDNSSRV), tag: cbasn1.IA5String, value: ""}},
	}
	for _, c := range cases {
		tc, err := ca.issue(Leaf{}, []sanEntry{c.entry})
		if err != nil {
			t.Fatal(err)
		}
		_, err = Verify("example.org", parseChain(t, tc.Certificate), VerifyOptions{Roots: ca.Pool()})
		if !errors.Is(err, ErrMalformedSAN) {
			t.Errorf("%s: Verify error %v, want ErrMalformedSAN", c.name, err)
		}
	}
	// Raw DER problems.
	raw := map[string][]byte{
		"empty":              {},
		"not a sequence":     {0x04, 0x00},
		"trailing":           {0x30, 0x00, 0x00},
		"truncated":          {0x30, 0x05, 0x82, 0x03, 'a'},
		"otherName no oid":   {0x30, 0x04, 0xa0, 0x02, 0x05, 0x00},
		"otherName no value": {0x30, 0x0a, 0xa0, 0x08, 0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07},
		"primitive [0]":      {0x30, 0x02, 0x80, 0x00},
		"dNSName non-ASCII":  {0x30, 0x03, 0x82, 0x01, 0xff},
	}
	for name, der := range raw {
		if _, err := parseSAN(der); !errors.Is(err, ErrMalformedSAN) {
			t.Errorf("%s: parseSAN error %v, want ErrMalformedSAN", name, err)
		}
	}
}
