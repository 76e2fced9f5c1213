package s2s

import (
	"errors"
	"fmt"

	"mellium.im/xmpp/stanza"
	streamerr "mellium.im/xmpp/stream"

	"github.com/xmppfed/xmppfed/dnsdisco"
)

// NegotiationError reports why a stream with a remote domain could not be
// opened or accepted: which step failed and the underlying error. The
// error wraps a streamerr.Error when a stream error was sent or received, so
// errors.Is(err, streamerr.HostUnknown) works, and a *dnsdisco.LookupError or
// a certs error when discovery or certificate verification failed.
type NegotiationError struct {
	// Local and Remote are the domains of the stream ("" when unknown, for
	// example before an inbound stream header arrived).
	Local, Remote string
	// Step is where negotiation failed: "dns", "connect", "tls",
	// "starttls", "sasl", "dialback", "stream" or "policy" (the policy
	// refused the remote domain: Err wraps the *policy.Denial).
	Step string
	// Err is the cause.
	Err error
}

// Error describes the failure.
func (e *NegotiationError) Error() string {
	return "s2s: " + e.Step + " " + e.Local + "->" + e.Remote + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *NegotiationError) Unwrap() error { return e.Err }

// ErrRefused is wrapped by the error of a stream that the policy refuses,
// together with the *policy.Denial that says why.
var ErrRefused = errors.New("s2s: remote domain refused by the policy")

// ErrDialbackInvalid is wrapped by the error of a dialback request that the
// peer (or its Authoritative Server) answered with type='invalid'
// (XEP-0220 §2.1.4).
var ErrDialbackInvalid = errors.New("s2s: dialback key invalid")

// ErrNoMethod is wrapped when the settings and the peer's stream features
// leave no authentication method.
var ErrNoMethod = errors.New("s2s: no authentication method left")

// ErrStreamClosed is returned by authorizeSend when the stream ended while
// it waited.
var ErrStreamClosed = errors.New("s2s: stream closed")

// DialbackError is a typed dialback error (XEP-0220 §2.4 errors): the peer
// answered our db:result with type='error' and a stanza error condition.
// It does not end the stream.
type DialbackError struct {
	Condition stanza.Condition // e.g. not-authorized, remote-server-not-found
}

// Error describes the condition.
func (e *DialbackError) Error() string {
	return "s2s: dialback error: " + string(e.Condition)
}

// PeerStreamError is a stream error the peer sent us (RFC 6120 §4.9).
// errors.Is(err, streamerr.X) matches its condition.
type PeerStreamError struct {
	Cond streamerr.Error // the defined condition, e.g. streamerr.HostUnknown
	Text string          // the peer's <text/>, if any
}

// Error describes the condition and text.
func (e *PeerStreamError) Error() string {
	if e.Text == "" {
		return "s2s: peer sent stream error " + e.Cond.Err
	}
	return "s2s: peer sent stream error " + e.Cond.Err + ": " + e.Text
}

// Unwrap returns the condition.
func (e *PeerStreamError) Unwrap() error { return e.Cond }

// sentError is a stream error we sent to the peer: it wraps the condition.
type sentError struct {
	cond streamerr.Error
	text string
}

// Error names the condition we sent and why.
func (e *sentError) Error() string {
	return "sent stream error " + e.cond.Err + ": " + e.text
}

// Unwrap returns the condition, so errors.Is(err, streamerr.X) works.
func (e *sentError) Unwrap() error { return e.cond }

// negErr builds a *NegotiationError; a nil err is replaced by a description.
func negErr(local, remote, step string, err error) *NegotiationError {
	return &NegotiationError{Local: local, Remote: remote, Step: step, Err: err}
}

// negErrf builds a *NegotiationError from a format.
func negErrf(local, remote, step, format string, args ...any) *NegotiationError {
	return negErr(local, remote, step, fmt.Errorf(format, args...))
}

// bounceCondition picks the stanza error condition for stanzas that could
// not be delivered because of err: remote-server-not-found when DNS says the
// domain or service does not exist (or the policy refuses it), else
// remote-server-timeout (RFC 6120 §8.3.3.15, §8.3.3.16).
func bounceCondition(err error) stanza.Condition {
	var le *dnsdisco.LookupError
	if errors.As(err, &le) && le.NotFound() {
		return stanza.RemoteServerNotFound
	}
	if errors.Is(err, ErrRefused) {
		return stanza.RemoteServerNotFound
	}
	return stanza.RemoteServerTimeout
}

// stepRank orders steps by how informative an error from them is: an error
// after a TCP connection beats a connect error, which beats a DNS error.
func stepRank(step string) int {
	switch step {
	case "policy":
		return 5
	case "tls", "starttls", "sasl", "dialback", "stream":
		return 3
	case "connect":
		return 2
	case "dns":
		return 1
	}
	return 0
}
