package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrNoCertificate is returned when the peer presented no certificate.
var ErrNoCertificate = errors.New("certs: peer presented no certificate")

// ChainReason says why a chain did not validate.
type ChainReason uint8

// Chain failure reasons. The zero value is Other.
const (
	// Other is any failure not listed below; see ChainError.Err.
	Other ChainReason = iota
	// Expired: a certificate's notAfter is before the current time.
	Expired
	// NotYetValid: a certificate's notBefore is after the current time.
	NotYetValid
	// UnknownIssuer: no path to a trusted root (or a self-signed leaf).
	UnknownIssuer
	// InvalidSignature: a signature in the chain did not verify.
	InvalidSignature
	// Malformed: a certificate could not be parsed or has an unhandled
	// critical extension.
	Malformed
	// NotAuthorizedForUse: the extended key usage allows neither serverAuth
	// nor clientAuth, or an issuer is not a CA.
	NotAuthorizedForUse
	// ConstraintViolation: a name, path length or EKU constraint of an
	// issuer is violated.
	ConstraintViolation
)

// String returns a short lower-case name such as "expired".
func (r ChainReason) String() string {
	switch r {
	case Other:
		return "other"
	case Expired:
		return "expired"
	case NotYetValid:
		return "not yet valid"
	case UnknownIssuer:
		return "unknown issuer"
	case InvalidSignature:
		return "invalid signature"
	case Malformed:
		return "malformed"
	case NotAuthorizedForUse:
		return "not authorized for use"
	case ConstraintViolation:
		return "constraint violation"
	}
	return "ChainReason(" + strconv.Itoa(int(r)) + ")"
}

// ChainError reports a certificate chain that did not validate.
type ChainError struct {
	// Reason classifies the failure for programs; Error words it for people.
	Reason ChainReason
	// Subject is the offending certificate's subject, e.g. "CN=a.example".
	Subject string
	// Issuer is the offending certificate's issuer (for UnknownIssuer).
	Issuer string
	// NotBefore and NotAfter are the offending certificate's validity
	// period (set for Expired and NotYetValid).
	NotBefore, NotAfter time.Time
	// Now is the time the chain was checked at.
	Now time.Time
	// Err is the underlying crypto/x509 error.
	Err error
}

// Error says in an operator's words what is wrong with which certificate,
// with the dates for Expired and NotYetValid.
func (e *ChainError) Error() string {
	const layout = time.RFC3339
	subj := strconv.Quote(e.Subject)
	switch e.Reason {
	case Expired:
		return fmt.Sprintf("certs: certificate %s expired on %s (now %s)", subj,
			e.NotAfter.UTC().Format(layout), e.Now.UTC().Format(layout))
	case NotYetValid:
		return fmt.Sprintf("certs: certificate %s is not valid before %s (now %s)", subj,
			e.NotBefore.UTC().Format(layout), e.Now.UTC().Format(layout))
	case UnknownIssuer:
		return fmt.Sprintf("certs: certificate %s is issued by %q, which is not a trusted authority (self-signed or missing intermediate?)",
			e.Subject, e.Issuer)
	case NotAuthorizedForUse:
		return fmt.Sprintf("certs: certificate %s is not authorized for TLS server or client authentication: %v", subj, e.Err)
	}
	return fmt.Sprintf("certs: certificate %s: %s: %v", subj, e.Reason, e.Err)
}

// Unwrap returns the underlying crypto/x509 error.
func (e *ChainError) Unwrap() error { return e.Err }

// newChainError classifies an error from x509.Certificate.Verify.
func newChainError(err error, leaf *x509.Certificate, now time.Time) *ChainError {
	ce := &ChainError{Reason: Other, Err: err, Now: now}
	cert := leaf
	var (
		inv  x509.CertificateInvalidError
		ua   x509.UnknownAuthorityError
		unh  x509.UnhandledCriticalExtension
		cons x509.ConstraintViolationError
	)
	switch {
	case errors.As(err, &inv):
		if inv.Cert != nil {
			cert = inv.Cert
		}
		switch inv.Reason {
		case x509.Expired:
			ce.Reason = Expired
			if now.Before(cert.NotBefore) {
				ce.Reason = NotYetValid
			}
		case x509.IncompatibleUsage, x509.NotAuthorizedToSign:
			ce.Reason = NotAuthorizedForUse
		case x509.CANotAuthorizedForThisName, x509.TooManyIntermediates, x509.UnconstrainedName,
			x509.TooManyConstraints, x509.CANotAuthorizedForExtKeyUsage, x509.NameConstraintsWithoutSANs:
			ce.Reason = ConstraintViolation
		}
	case errors.As(err, &ua):
		ce.Reason = UnknownIssuer
		if ua.Cert != nil {
			cert = ua.Cert
		}
	case errors.As(err, &unh):
		ce.Reason = Malformed
	case errors.As(err, &cons):
		ce.Reason = ConstraintViolation
	case errors.Is(err, x509.ErrUnsupportedAlgorithm), errors.As(err, new(x509.InsecureAlgorithmError)):
		ce.Reason = InvalidSignature
	}
	if cert != nil {
		ce.Subject = cert.Subject.String()
		ce.Issuer = cert.Issuer.String()
		ce.NotBefore, ce.NotAfter = cert.NotBefore, cert.NotAfter
	}
	return ce
}

// IdentityError reports a valid chain whose leaf does not name the domain.
type IdentityError struct {
	// Domain is the reference domain (A-label) that was checked.
	Domain string
	// Presented lists every identity the certificate presents.
	Presented []Identity
}

// Error names the domain and lists every identity the certificate does
// carry, so the mismatch can be seen at a glance.
func (e *IdentityError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "certs: certificate is not valid for %q; it names ", e.Domain)
	if len(e.Presented) == 0 {
		b.WriteString("no identities at all")
		return b.String()
	}
	for i, id := range e.Presented {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(id.String())
	}
	return b.String()
}

// DANEError reports that usable TLSA records existed but none matched the
// presented chain. RFC 7673 (with RFC 7671): there is no fallback to PKIX.
type DANEError struct {
	// Records is the number of usable TLSA records.
	Records int
	// Reason says what was tried.
	Reason string
}

// Error says how many usable records there were and what was tried.
func (e *DANEError) Error() string {
	return fmt.Sprintf("certs: none of the %d usable TLSA records matched: %s", e.Records, e.Reason)
}
