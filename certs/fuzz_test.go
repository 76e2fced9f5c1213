package certs

import (
	"encoding/asn1"
	"errors"
	"testing"
	"unicode/utf8"

	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// otherNameRef is the otherName shape decoded independently with
// encoding/asn1 to cross-check parseSAN.
type otherNameRef struct {
	TypeID asn1.ObjectIdentifier
	Value  asn1.RawValue `asn1:"explicit,tag:0"`
}

// FuzzParseSAN feeds arbitrary bytes to the SubjectAltName parser. It must
// never panic, errors must wrap ErrMalformedSAN, and every XmppAddr or SRV-ID
// it returns must, according to encoding/asn1, come from an otherName with
// the right type-id OID and string type.
func FuzzParseSAN(f *testing.F) {
	ca, err := NewTestCA()
	if err != nil {
		f.Fatal(err)
	}
	c, err := ca.IssueDomain("example.org", "bücher.example")
	if err != nil {
		f.Fatal(err)
	}
	for _, ext := range c.Leaf.Extensions {
		if ext.Id.String() == oidSAN {
			f.Add(ext.Value)
		}
	}
	for _, es := range [][]sanEntry{
		{{oid: upnOID, tag: cbasn1.UTF8String, value: "example.org"}},
		{{oid: mustOID(oidXMPPAddr), tag: cbasn1.IA5String, value: "example.org"}},
		{{oid: mustOID(oidDNSSRV), tag: cbasn1.UTF8String, value: "_xmpp-server.example.org"}},
		{{value: "*.example.org"}, {oid: mustOID(oidXMPPAddr), tag: cbasn1.UTF8String, value: "user@example.org"}},
	} {
		b, err := marshalSAN(es)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})
	f.Add([]byte{0x30, 0x05, 0x82, 0x03, 'a'})

	xmppOID, srvOID := mustOID(oidXMPPAddr), mustOID(oidDNSSRV)
	f.Fuzz(func(t *testing.T, der []byte) {
		ids, err := parseSAN(der)
		if err != nil {
			if !errors.Is(err, ErrMalformedSAN) {
				t.Fatalf("error %v does not wrap ErrMalformedSAN", err)
			}
			return
		}
		var gns []asn1.RawValue
		rest, err := asn1.Unmarshal(der, &gns)
		if err != nil || len(rest) != 0 {
			// encoding/asn1 is stricter in places (e.g. it rejects some
			// string types it cannot decode); only cross-check what it
			// parses, but our accepted identities must still be sane.
			for _, id := range ids {
				if id.Type == XmppAddr && !utf8.ValidString(id.Value) || id.Type != XmppAddr && !isIA5([]byte(id.Value)) {
					t.Fatalf("bad value in %v", id)
				}
			}
			return
		}
		var wantX, wantS []string
		for _, gn := range gns {
			if gn.Class != asn1.ClassContextSpecific || gn.Tag != tagOtherName || !gn.IsCompound {
				continue
			}
			var on otherNameRef
			// otherName is [0] IMPLICIT SEQUENCE (RFC 5280 §4.2.1.6).
			if r, err := asn1.UnmarshalWithParams(gn.FullBytes, &on, "tag:0"); err != nil || len(r) != 0 {
				continue
			}
			// RawValue keeps the [0] EXPLICIT wrapper: decode what it wraps.
			var inner asn1.RawValue
			if r, err := asn1.Unmarshal(on.Value.Bytes, &inner); err != nil || len(r) != 0 || inner.Class != asn1.ClassUniversal {
				continue
			}
			switch {
			case on.TypeID.Equal(xmppOID) && inner.Tag == asn1.TagUTF8String:
				wantX = append(wantX, string(inner.Bytes))
			case on.TypeID.Equal(srvOID) && inner.Tag == asn1.TagIA5String:
				wantS = append(wantS, string(inner.Bytes))
			}
		}
		var gotX, gotS []string
		for _, id := range ids {
			switch id.Type {
			case XmppAddr:
				gotX = append(gotX, id.Value)
			case SRVID:
				gotS = append(gotS, id.Value)
			case DNSID:
			default:
				t.Fatalf("unexpected identity %v", id)
			}
		}
		if !equalStrings(gotX, wantX) || !equalStrings(gotS, wantS) {
			t.Fatalf("parseSAN XmppAddrs %q SRV-IDs %q; encoding/asn1 sees %q %q", gotX, gotS, wantX, wantS)
		}
	})
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
