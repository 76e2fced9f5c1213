package dnsdisco

import (
	"context"
	"errors"
	"strconv"
	"strings"
)

// Sentinel errors carried by [LookupError]. Use [errors.Is] to test for them;
// [LookupError.NotFound] and [LookupError.Temporary] group them the way an
// XMPP server picks its bounce condition.
var (
	// ErrInvalidName reports a malformed domain or host name. No query was sent.
	ErrInvalidName = errors.New("dnsdisco: invalid name")
	// ErrNoService reports that the domain published SRV records with the
	// target "." (RFC 2782, RFC 6120 §3.2.1, XEP-0368): it explicitly offers
	// no server-to-server service.
	ErrNoService = errors.New("dnsdisco: domain explicitly offers no service")
	// ErrNotFound reports NXDOMAIN: the name does not exist.
	ErrNotFound = errors.New("dnsdisco: no such host")
	// ErrNoAddress reports a name that exists but has no A or AAAA records,
	// or SRV targets none of which has an address.
	ErrNoAddress = errors.New("dnsdisco: no address")
	// ErrTimeout reports that no nameserver answered within
	// Timeout × Attempts.
	ErrTimeout = errors.New("dnsdisco: timeout")
	// ErrServerFailure reports SERVFAIL (including DNSSEC bogus answers from
	// a validating resolver), REFUSED, another error rcode, a malformed
	// answer, or an unusable resolver configuration.
	ErrServerFailure = errors.New("dnsdisco: server failure")
)

// LookupError describes a failed lookup. Its Err is, or wraps, one of the
// sentinel errors of this package, or a context error when the caller's
// context ended.
type LookupError struct {
	Domain string // the name as the caller gave it
	Name   string // the DNS name queried (A-label, no trailing dot), if any
	Type   string // "SRV", "A", "AAAA", "TLSA", or "" when no query applies
	Err    error  // one of the sentinels (possibly wrapped with detail)
}

// Error returns a readable description naming the queried name, its type
// and the cause, for example
// "dnsdisco: lookup _xmpp-server._tcp.example.org SRV: timeout: no answer from 127.0.0.1:53".
func (e *LookupError) Error() string {
	var b strings.Builder
	b.WriteString("dnsdisco: lookup ")
	name := e.Name
	if name == "" {
		name = e.Domain
	}
	b.WriteString(quoteIfOdd(name))
	if e.Type != "" {
		b.WriteByte(' ')
		b.WriteString(e.Type)
	}
	if e.Domain != "" && e.Name != "" && !strings.EqualFold(strings.TrimSuffix(e.Domain, "."), e.Name) {
		b.WriteString(" (for ")
		b.WriteString(quoteIfOdd(e.Domain))
		b.WriteByte(')')
	}
	b.WriteString(": ")
	if e.Err == nil {
		b.WriteString("unknown error")
	} else {
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "dnsdisco: "))
	}
	return b.String()
}

// quoteIfOdd quotes names that are empty or contain characters outside
// printable ASCII, so that error messages show exactly what was rejected.
func quoteIfOdd(s string) string {
	if s == "" {
		return `""`
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == '"' {
			return strconv.Quote(s)
		}
	}
	return s
}

// Unwrap returns the underlying error.
func (e *LookupError) Unwrap() error { return e.Err }

// NotFound reports whether the domain is known not to offer a reachable
// server: invalid name, no service, no such host or no address. An XMPP
// server maps it to remote-server-not-found.
func (e *LookupError) NotFound() bool {
	return errors.Is(e.Err, ErrInvalidName) || errors.Is(e.Err, ErrNoService) ||
		errors.Is(e.Err, ErrNotFound) || errors.Is(e.Err, ErrNoAddress)
}

// Temporary reports whether the failure may go away on retry: a timeout,
// a server failure or an expired context deadline. An XMPP server maps it
// to remote-server-timeout.
func (e *LookupError) Temporary() bool {
	return errors.Is(e.Err, ErrTimeout) || errors.Is(e.Err, ErrServerFailure) ||
		errors.Is(e.Err, context.DeadlineExceeded)
}
