package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// TestCA is a throw-away certificate authority for tests and examples. It
// issues leaves with DNS-IDs, SRV-IDs and XmppAddrs. Production code never
// needs it.
type TestCA struct {
	root    *x509.Certificate
	rootKey *ecdsa.PrivateKey
	// signer issues leaves: the root, or an intermediate.
	signer    *x509.Certificate
	signerKey *ecdsa.PrivateKey
}

// NewTestCA creates a CA with a fresh ECDSA P-256 self-signed root, valid
// from one hour ago for ten years.
func NewTestCA() (*TestCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: TestCA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"xmppfed"}, CommonName: "xmppfed test root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("certs: TestCA root: %w", err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: TestCA root: %w", err)
	}
	return &TestCA{root: root, rootKey: key, signer: root, signerKey: key}, nil
}

// NewIntermediate returns a CA sharing this CA's root whose leaves are
// signed by a new intermediate: their chain is [leaf, intermediate].
func (ca *TestCA) NewIntermediate() (*TestCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: TestCA intermediate key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"xmppfed"}, CommonName: "xmppfed test intermediate"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.root, &key.PublicKey, ca.rootKey)
	if err != nil {
		return nil, fmt.Errorf("certs: TestCA intermediate: %w", err)
	}
	inter, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: TestCA intermediate: %w", err)
	}
	return &TestCA{root: ca.root, rootKey: ca.rootKey, signer: inter, signerKey: key}, nil
}

// Certificate returns the root certificate.
func (ca *TestCA) Certificate() *x509.Certificate { return ca.root }

// Pool returns a new pool containing only the root.
func (ca *TestCA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.root)
	return p
}

// RootPEM returns the root certificate in PEM form.
func (ca *TestCA) RootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.root.Raw})
}

// Leaf describes a certificate for [TestCA.Issue].
type Leaf struct {
	DNSNames   []string // DNS-IDs (dNSName)
	SRVNames   []string // full SRV-IDs, e.g. "_xmpp-server.example.org"
	XMPPAddrs  []string // XmppAddr values, e.g. "example.org"
	CommonName string   // subject CN; empty: none
	// NotBefore and NotAfter bound validity. Zero: now-1h and now+24h.
	NotBefore, NotAfter time.Time
	// ExtKeyUsage is the EKU list. Nil: serverAuth only, like public CAs
	// since 2025.
	ExtKeyUsage []x509.ExtKeyUsage
	// SelfSigned makes the leaf sign itself instead of the CA (an unknown
	// issuer).
	SelfSigned bool
}

// Issue creates a certificate for l with a fresh ECDSA P-256 key. The result
// has Leaf set and chain [leaf] (or [leaf, intermediate] for a CA from
// NewIntermediate; [leaf] if SelfSigned).
func (ca *TestCA) Issue(l Leaf) (tls.Certificate, error) {
	var entries []sanEntry
	for _, d := range l.DNSNames {
		entries = append(entries, sanEntry{value: d})
	}
	for _, s := range l.SRVNames {
		entries = append(entries, sanEntry{oid: mustOID(oidDNSSRV), tag: cbasn1.IA5String, value: s})
	}
	for _, x := range l.XMPPAddrs {
		entries = append(entries, sanEntry{oid: mustOID(oidXMPPAddr), tag: cbasn1.UTF8String, value: x})
	}
	return ca.issue(l, entries)
}

// issue is Issue with the SAN entries given directly (tests use it for
// otherNames of other types).
func (ca *TestCA) issue(l Leaf, entries []sanEntry) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: Issue key: %w", err)
	}
	now := time.Now()
	nb, na := l.NotBefore, l.NotAfter
	if nb.IsZero() {
		nb = now.Add(-time.Hour)
	}
	if na.IsZero() {
		na = now.Add(24 * time.Hour)
	}
	eku := l.ExtKeyUsage
	if eku == nil {
		eku = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		// A non-empty subject keeps a non-critical SAN valid (RFC 5280 §4.2.1.6).
		Subject:     pkix.Name{Organization: []string{"xmppfed test leaf"}, CommonName: l.CommonName},
		NotBefore:   nb,
		NotAfter:    na,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: eku,
	}
	if len(entries) > 0 {
		san, err := marshalSAN(entries)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("certs: Issue subjectAltName: %w", err)
		}
		tmpl.ExtraExtensions = []pkix.Extension{{Id: mustOID(oidSAN), Value: san}}
	}
	parent, signKey := ca.signer, ca.signerKey
	if l.SelfSigned {
		parent, signKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: Issue: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certs: Issue: %w", err)
	}
	c := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	if !l.SelfSigned && ca.signer != ca.root {
		c.Certificate = append(c.Certificate, ca.signer.Raw)
	}
	return c, nil
}

// IssueDomain issues a certificate, valid now, with a DNS-ID, an SRV-ID
// ("_xmpp-server.<domain>") and an XmppAddr for each domain.
func (ca *TestCA) IssueDomain(domains ...string) (tls.Certificate, error) {
	if len(domains) == 0 {
		return tls.Certificate{}, errors.New("certs: IssueDomain: no domains")
	}
	var l Leaf
	for _, d := range domains {
		a, err := NormalizeDomain(d)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("certs: IssueDomain: %w", err)
		}
		l.DNSNames = append(l.DNSNames, a)
		l.SRVNames = append(l.SRVNames, srvIDFor(a))
		l.XMPPAddrs = append(l.XMPPAddrs, d)
	}
	return ca.Issue(l)
}

// WritePEM writes c to dir/name.crt (all certificates, leaf first) and
// dir/name.key (PKCS #8, mode 0600) and returns both paths.
func WritePEM(dir, name string, c tls.Certificate) (certFile, keyFile string, err error) {
	if name == "" || strings.ContainsAny(name, `/\`) {
		return "", "", fmt.Errorf("certs: WritePEM: invalid name %q", name)
	}
	if len(c.Certificate) == 0 || c.PrivateKey == nil {
		return "", "", errors.New("certs: WritePEM: certificate or key missing")
	}
	var certPEM []byte
	for _, der := range c.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return "", "", fmt.Errorf("certs: WritePEM key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("certs: WritePEM: %w", err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("certs: WritePEM: %w", err)
	}
	// WriteFile keeps the mode of an existing file: make sure it is 0600.
	if err := os.Chmod(keyFile, 0o600); err != nil {
		return "", "", fmt.Errorf("certs: WritePEM: %w", err)
	}
	return certFile, keyFile, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand never fails on supported platforms (Go 1.24+ panics
		// internally instead); keep a valid serial regardless.
		return big.NewInt(time.Now().UnixNano())
	}
	return n.Add(n, big.NewInt(1))
}

// mustOID parses one of our constant dotted OIDs.
func mustOID(s string) asn1.ObjectIdentifier {
	var oid asn1.ObjectIdentifier
	for part := range strings.SplitSeq(s, ".") {
		n := 0
		for _, c := range part {
			n = n*10 + int(c-'0')
		}
		oid = append(oid, n)
	}
	return oid
}
