package certs

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// IdentityType says which kind of identity a certificate presents.
type IdentityType uint8

// The identity types. Verify prefers SRV-ID, then XmppAddr, then DNS-ID.
const (
	// IdentityNone is the zero value: no identity.
	IdentityNone IdentityType = iota
	// SRVID is an RFC 4985 SRVName otherName such as "_xmpp-server.example.org".
	SRVID
	// XmppAddr is an RFC 6120 §13.7.1.4 id-on-xmppAddr otherName.
	XmppAddr
	// DNSID is a dNSName SubjectAltName entry (RFC 6125 §6.4).
	DNSID
	// CommonName is the subject common name, a legacy CN-ID (RFC 6125 §6.4.4;
	// RFC 9525 no longer matches CN-IDs).
	CommonName
	// DANEEE marks a DANE-EE(3) TLSA match (RFC 7671 §5.1): no name was checked.
	DANEEE
)

// String returns the name the RFCs use, e.g. "SRV-ID".
func (t IdentityType) String() string {
	switch t {
	case IdentityNone:
		return "none"
	case SRVID:
		return "SRV-ID"
	case XmppAddr:
		return "XmppAddr"
	case DNSID:
		return "DNS-ID"
	case CommonName:
		return "CN"
	case DANEEE:
		return "DANE-EE"
	}
	return "IdentityType(" + strconv.Itoa(int(t)) + ")"
}

// Identity is one identity presented by a certificate, with its value as
// presented (not normalised).
type Identity struct {
	Type  IdentityType // which kind of identity
	Value string       // as it appears in the certificate
}

// String returns e.g. `SRV-ID "_xmpp-server.example.org"`.
func (id Identity) String() string {
	return id.Type.String() + " " + strconv.Quote(id.Value)
}

// OIDs of the otherName types we understand.
const (
	oidSAN      = "2.5.29.17"
	oidXMPPAddr = "1.3.6.1.5.5.7.8.5" // RFC 6120 §13.7.1.4 id-on-xmppAddr
	oidDNSSRV   = "1.3.6.1.5.5.7.8.7" // RFC 4985 §2 id-on-dnsSRV
)

// Context-specific tags of GeneralName (RFC 5280 §4.2.1.6).
const (
	tagOtherName = 0
	tagDNSName   = 2
)

// ErrMalformedSAN is wrapped by every error about a SubjectAltName extension
// that is not valid DER of the expected shape.
var ErrMalformedSAN = errors.New("certs: malformed subjectAltName")

func sanError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedSAN, fmt.Sprintf(format, args...))
}

// parseSAN parses the DER value of a SubjectAltName extension and returns the
// SRV-IDs, XmppAddrs and DNS-IDs in it, in encoding order. Other GeneralName
// types and otherNames of other type-ids are skipped. The type-id OID of
// every otherName is checked: only id-on-xmppAddr with a UTF8String is an
// XmppAddr (RFC 6120 §13.7.1.4) and only id-on-dnsSRV with an IA5String is an
// SRV-ID (RFC 4985 §2).
func parseSAN(der []byte) ([]Identity, error) {
	input := cryptobyte.String(der)
	var names cryptobyte.String
	if !input.ReadASN1(&names, cbasn1.SEQUENCE) {
		return nil, sanError("not a SEQUENCE of GeneralName")
	}
	if !input.Empty() {
		return nil, sanError("%d trailing bytes after GeneralNames", len(input))
	}
	var ids []Identity
	for i := 0; !names.Empty(); i++ {
		var (
			gn  cryptobyte.String
			tag cbasn1.Tag
		)
		if !names.ReadAnyASN1(&gn, &tag) {
			return nil, sanError("GeneralName #%d is not valid DER", i+1)
		}
		switch tag {
		case cbasn1.Tag(tagOtherName).ContextSpecific().Constructed():
			id, err := parseOtherName(gn, i+1)
			if err != nil {
				return nil, err
			}
			if id.Type != IdentityNone {
				ids = append(ids, id)
			}
		case cbasn1.Tag(tagDNSName).ContextSpecific():
			if !isIA5(gn) {
				return nil, sanError("dNSName #%d is not an IA5String", i+1)
			}
			ids = append(ids, Identity{Type: DNSID, Value: string(gn)})
		case cbasn1.Tag(tagOtherName).ContextSpecific(), cbasn1.Tag(tagDNSName).ContextSpecific().Constructed():
			return nil, sanError("GeneralName #%d has the wrong constructed bit", i+1)
		}
	}
	return ids, nil
}

// parseOtherName parses the body of an otherName (RFC 5280 §4.2.1.6):
// SEQUENCE { type-id OBJECT IDENTIFIER, value [0] EXPLICIT ANY }.
// It returns IdentityNone for otherName types we do not use.
func parseOtherName(body cryptobyte.String, n int) (Identity, error) {
	var (
		oid      asn1.ObjectIdentifier
		explicit cryptobyte.String
	)
	if !body.ReadASN1ObjectIdentifier(&oid) {
		return Identity{}, sanError("otherName #%d has no valid type-id OID", n)
	}
	if !body.ReadASN1(&explicit, cbasn1.Tag(0).ContextSpecific().Constructed()) {
		return Identity{}, sanError("otherName #%d (%s) has no [0] EXPLICIT value", n, oid)
	}
	if !body.Empty() {
		return Identity{}, sanError("otherName #%d (%s) has trailing data", n, oid)
	}
	var (
		val cryptobyte.String
		tag cbasn1.Tag
	)
	if !explicit.ReadAnyASN1(&val, &tag) || !explicit.Empty() {
		return Identity{}, sanError("otherName #%d (%s) value is not one DER element", n, oid)
	}
	switch oid.String() {
	case oidXMPPAddr:
		// RFC 6120 §13.7.1.4: XmppAddr ::= UTF8String.
		if tag != cbasn1.UTF8String || !utf8.Valid(val) {
			return Identity{}, sanError("XmppAddr otherName #%d is not a UTF8String (tag %d)", n, tag)
		}
		return Identity{Type: XmppAddr, Value: string(val)}, nil
	case oidDNSSRV:
		// RFC 4985 §2: SRVName ::= IA5String (SIZE (1..MAX)).
		if tag != cbasn1.IA5String || len(val) == 0 || !isIA5(val) {
			return Identity{}, sanError("SRVName otherName #%d is not a non-empty IA5String (tag %d)", n, tag)
		}
		return Identity{Type: SRVID, Value: string(val)}, nil
	}
	return Identity{}, nil
}

func isIA5(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// Identities returns every identity cert presents, in the order of its
// SubjectAltName extension (SRV-IDs, XmppAddrs and DNS-IDs), then the subject
// common name, if any, as a CommonName identity. Whether a CommonName counts
// is decided by [Verify]; Identities is for diagnostics.
// A malformed SubjectAltName gives an error wrapping [ErrMalformedSAN].
func Identities(cert *x509.Certificate) ([]Identity, error) {
	if cert == nil {
		return nil, errors.New("certs: Identities: nil certificate")
	}
	var ids []Identity
	for _, ext := range cert.Extensions {
		if ext.Id.String() != oidSAN {
			continue
		}
		if ids != nil {
			return nil, sanError("certificate has two subjectAltName extensions")
		}
		var err error
		if ids, err = parseSAN(ext.Value); err != nil {
			return nil, err
		}
		if ids == nil {
			ids = []Identity{}
		}
	}
	if cn := cert.Subject.CommonName; cn != "" {
		ids = append(ids, Identity{Type: CommonName, Value: cn})
	}
	return ids, nil
}

// sanEntry is one GeneralName to encode with marshalSAN.
type sanEntry struct {
	oid   asn1.ObjectIdentifier // otherName type-id; nil for a dNSName
	tag   cbasn1.Tag            // otherName value string tag
	value string
}

// marshalSAN encodes a SubjectAltName extension value.
func marshalSAN(entries []sanEntry) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, e := range entries {
			if e.oid == nil {
				b.AddASN1(cbasn1.Tag(tagDNSName).ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddBytes([]byte(e.value))
				})
				continue
			}
			b.AddASN1(cbasn1.Tag(tagOtherName).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(e.oid)
				b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
					b.AddASN1(e.tag, func(b *cryptobyte.Builder) {
						b.AddBytes([]byte(e.value))
					})
				})
			})
		}
	})
	return b.Bytes()
}
