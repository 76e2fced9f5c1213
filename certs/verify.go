package certs

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"
)

// TLSA is one DANE TLSA record (RFC 6698 §2.1). It has the same shape as
// dnsdisco.TLSA, so callers convert with certs.TLSA(t).
type TLSA struct {
	Usage        uint8  // certificate usage: 2 DANE-TA, 3 DANE-EE (RFC 7218)
	Selector     uint8  // 0 full certificate, 1 SubjectPublicKeyInfo
	MatchingType uint8  // 0 exact, 1 SHA-256, 2 SHA-512
	Data         []byte // certificate association data, binary (not hex)
}

// TLSA certificate usages, selectors and matching types (RFC 7218).
const (
	usageDANETA  = 2
	usageDANEEE  = 3
	selectorCert = 0
	selectorSPKI = 1
	matchFull    = 0
	matchSHA256  = 1
	matchSHA512  = 2
)

// usable reports whether we can use the record. RFC 7671 and RFC 7673:
// PKIX-TA(0) and PKIX-EE(1) are not used for s2s here (as in RFC 7672), and
// unknown usages, selectors and matching types are "unusable" and ignored, as
// are digests of the wrong length.
func (t TLSA) usable() bool {
	if t.Usage != usageDANETA && t.Usage != usageDANEEE {
		return false
	}
	if t.Selector != selectorCert && t.Selector != selectorSPKI {
		return false
	}
	switch t.MatchingType {
	case matchFull:
		return len(t.Data) > 0
	case matchSHA256:
		return len(t.Data) == sha256.Size
	case matchSHA512:
		return len(t.Data) == sha512.Size
	}
	return false
}

// matches reports whether cert matches the record's selector and matching
// type (RFC 6698 §2.1.2, §2.1.3).
func (t TLSA) matches(cert *x509.Certificate) bool {
	var data []byte
	switch t.Selector {
	case selectorCert:
		data = cert.Raw
	case selectorSPKI:
		data = cert.RawSubjectPublicKeyInfo
	default:
		return false
	}
	switch t.MatchingType {
	case matchFull:
		return bytes.Equal(data, t.Data)
	case matchSHA256:
		h := sha256.Sum256(data)
		return bytes.Equal(h[:], t.Data)
	case matchSHA512:
		h := sha512.Sum512(data)
		return bytes.Equal(h[:], t.Data)
	}
	return false
}

// VerifyOptions configures [Verify]. The zero value verifies against the
// system roots at the current time with no DANE.
type VerifyOptions struct {
	// Roots are the trusted roots. Nil means the system roots.
	Roots *x509.CertPool
	// Intermediates are extra intermediates besides chain[1:]. Nil means none.
	// The pool is not modified.
	Intermediates *x509.CertPool
	// CurrentTime is the time to check validity at. Zero means time.Now().
	CurrentTime time.Time
	// TLSA are DANE records for the peer. Pass only DNSSEC-secure records
	// (RFC 7673 §3); nil means PKIX only.
	TLSA []TLSA
	// SecureNames are extra reference identities accepted as DNS-IDs: SRV
	// target names from a DNSSEC-secure SRV answer (XEP-0344, RFC 7673 §4).
	// They are never compared with SRV-IDs or XmppAddrs.
	SecureNames []string
	// AllowCommonName accepts the subject CN as a DNS-ID, but only when the
	// certificate has no DNS-ID, SRV-ID or XmppAddr (RFC 6125 §6.4.4; RFC
	// 9525 drops CN-IDs; off by default).
	AllowCommonName bool
}

// Result describes a successful verification.
type Result struct {
	// Domain is the A-label reference domain that was verified.
	Domain string
	// Matched is the presented identity that matched. Its Type is DANEEE
	// when a DANE-EE record matched and no name was checked; its Value is
	// then the record's parameters, e.g. "3 1 1".
	Matched Identity
	// Chain is the verified chain, leaf to root (nil for DANE-EE).
	Chain []*x509.Certificate
	// DANE is true when a TLSA record matched.
	DANE bool
}

// Verify checks that chain (leaf first, as sent by the peer) is a valid
// certificate chain for the XMPP domain, per RFC 6120 §13.7.2, RFC 7590 and
// RFC 9525, with DANE per RFC 7671/7673 when opts.TLSA has usable records.
//
// Errors: [ErrNoCertificate]; an invalid domain or option (message names it);
// *[ChainError] (also when a DANE-TA anchor matched but the chain to it did
// not validate); *[IdentityError]; *[DANEError]; or a malformed SAN
// (wrapping [ErrMalformedSAN]).
func Verify(domain string, chain []*x509.Certificate, opts VerifyOptions) (*Result, error) {
	if len(chain) == 0 {
		return nil, ErrNoCertificate
	}
	for i, c := range chain {
		if c == nil {
			return nil, fmt.Errorf("certs: chain[%d] is nil", i)
		}
	}
	ref, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	secure := make([]string, 0, len(opts.SecureNames))
	for _, n := range opts.SecureNames {
		s, err := NormalizeDomain(n)
		if err != nil {
			return nil, fmt.Errorf("certs: VerifyOptions.SecureNames: %w", err)
		}
		secure = append(secure, s)
	}
	now := opts.CurrentTime
	if now.IsZero() {
		now = time.Now()
	}
	leaf := chain[0]

	var usable []TLSA
	for _, t := range opts.TLSA {
		if t.usable() {
			usable = append(usable, t)
		}
	}
	if len(usable) > 0 {
		return verifyDANE(ref, secure, chain, usable, now, opts)
	}

	// PKIX (RFC 6120 §13.7.2.1). Either EKU is fine: a server initiating an
	// s2s connection presents its serverAuth certificate as a client
	// certificate (XEP-0178 §3; REFERENCE Part B §7).
	xo := x509.VerifyOptions{
		Roots:       opts.Roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if opts.Intermediates != nil {
		xo.Intermediates = opts.Intermediates.Clone()
	} else if len(chain) > 1 {
		xo.Intermediates = x509.NewCertPool()
	}
	for _, c := range chain[1:] {
		xo.Intermediates.AddCert(c)
	}
	chains, err := leaf.Verify(xo)
	if err != nil {
		return nil, newChainError(err, leaf, now)
	}
	id, err := matchName(leaf, ref, secure, opts.AllowCommonName)
	if err != nil {
		return nil, err
	}
	return &Result{Domain: ref, Matched: id, Chain: chains[0]}, nil
}

// verifyDANE applies usable TLSA records. RFC 7671 §5.1: a DANE-EE(3) match
// on the leaf authenticates the peer with no name, chain or expiry check.
// RFC 7671 §5.2: for DANE-TA(2) a certificate in the presented chain is the
// trust anchor; the chain from the leaf to it must validate and the name check
// applies. With usable records and no match there is no PKIX fallback
// (RFC 7673).
func verifyDANE(ref string, secure []string, chain []*x509.Certificate, usable []TLSA, now time.Time, opts VerifyOptions) (*Result, error) {
	leaf := chain[0]
	var nEE, nTA int
	for _, t := range usable {
		if t.Usage != usageDANEEE {
			nTA++
			continue
		}
		nEE++
		if t.matches(leaf) {
			return &Result{
				Domain:  ref,
				Matched: Identity{Type: DANEEE, Value: fmt.Sprintf("%d %d %d", t.Usage, t.Selector, t.MatchingType)},
				DANE:    true,
			}, nil
		}
	}
	var chainErr error
	for i, c := range chain {
		matched := false
		for _, t := range usable {
			if t.Usage == usageDANETA && t.matches(c) {
				matched = true
				break
			}
		}
		if !matched {
			continue
		}
		roots := x509.NewCertPool()
		roots.AddCert(c)
		inter := x509.NewCertPool()
		for _, ic := range chain[1:i] {
			inter.AddCert(ic)
		}
		chains, err := leaf.Verify(x509.VerifyOptions{
			Roots:         roots,
			Intermediates: inter,
			CurrentTime:   now,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		})
		if err != nil {
			if chainErr == nil {
				chainErr = newChainError(err, leaf, now)
			}
			continue
		}
		id, err := matchName(leaf, ref, secure, opts.AllowCommonName)
		if err != nil {
			return nil, err
		}
		return &Result{Domain: ref, Matched: id, Chain: chains[0], DANE: true}, nil
	}
	if chainErr != nil {
		return nil, chainErr
	}
	return nil, &DANEError{
		Records: len(usable),
		Reason: fmt.Sprintf("%d DANE-EE record(s) did not match the leaf and %d DANE-TA record(s) matched no certificate in the %d-certificate chain",
			nEE, nTA, len(chain)),
	}
}

// matchName finds the presented identity naming ref (RFC 6120 §13.7.2.1,
// RFC 6125 §6). SRV-IDs and XmppAddrs are checked against ref only; DNS-IDs
// against ref and the secure names. When several match, the most specific
// kind wins: SRV-ID, then XmppAddr, then DNS-ID. The CN is used only when
// allowCN is set and no SRV-ID, XmppAddr or DNS-ID is present (RFC 6125 §6.4.4;
// RFC 9525 drops CN-IDs).
func matchName(leaf *x509.Certificate, ref string, secure []string, allowCN bool) (Identity, error) {
	ids, err := Identities(leaf)
	if err != nil {
		return Identity{}, err
	}
	asDNS := func(v string) bool {
		if matchDNSID(v, ref) {
			return true
		}
		for _, s := range secure {
			if matchDNSID(v, s) {
				return true
			}
		}
		return false
	}
	hasSAN := false
	for _, ty := range [...]IdentityType{SRVID, XmppAddr, DNSID} {
		for _, id := range ids {
			if id.Type != ty {
				continue
			}
			hasSAN = true
			var ok bool
			switch ty {
			case SRVID:
				ok = matchSRVID(id.Value, ref)
			case XmppAddr:
				ok = matchXmppAddr(id.Value, ref)
			default:
				ok = asDNS(id.Value)
			}
			if ok {
				return id, nil
			}
		}
	}
	if allowCN && !hasSAN {
		for _, id := range ids {
			if id.Type == CommonName && asDNS(id.Value) {
				return id, nil
			}
		}
	}
	return Identity{}, &IdentityError{Domain: ref, Presented: ids}
}

// VerifyConnection returns a function for tls.Config.VerifyConnection that
// runs [Verify] for domain on the peer's certificates.
//
// Set InsecureSkipVerify: true on the client side, and ClientAuth:
// tls.RequireAnyClientCert (or tls.RequestClientCert) on the server side, so
// crypto/tls's own checks, which demand the clientAuth EKU of client
// certificates and check the wrong name, are skipped and this one applies.
func VerifyConnection(domain string, opts VerifyOptions) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		_, err := Verify(domain, cs.PeerCertificates, opts)
		return err
	}
}
