package s2s

import (
	"errors"
	"fmt"
	"strconv"
)

// Negotiation says whether a stream feature (TLS or SASL) must, may or must
// not be negotiated with a remote domain. The zero value, NegotiateDefault,
// means the secure default of the setting it is used for: Required for TLS,
// Optional for SASL.
type Negotiation uint8

// Negotiation values.
const (
	// NegotiateDefault is Required for TLS and Optional for SASL.
	NegotiateDefault Negotiation = iota
	// Required: the stream fails unless the feature is negotiated.
	Required
	// Optional: the feature is used when the peer offers it.
	Optional
	// NotSupported: the feature is neither offered nor used, even when the
	// peer offers it.
	NotSupported
)

// String returns "default", "required", "optional" or "not-supported".
func (n Negotiation) String() string {
	switch n {
	case NegotiateDefault:
		return "default"
	case Required:
		return "required"
	case Optional:
		return "optional"
	case NotSupported:
		return "not-supported"
	}
	return "Negotiation(" + strconv.Itoa(int(n)) + ")"
}

// Settings says which authentication methods a stream with one remote
// domain may use: SASL EXTERNAL (XEP-0178) needs TLS; Server Dialback
// (XEP-0220) runs over TLS, or over plain TCP only when TLS is not Required.
// The preference, best first, is SASL EXTERNAL over TLS, then dialback over
// TLS, then dialback over plain TCP.
//
// The zero value is the default: TLS required, SASL optional, dialback on
// (so dialback only over TLS).
type Settings struct {
	TLS             Negotiation // NegotiateDefault means Required
	SASL            Negotiation // NegotiateDefault means Optional
	DisableDialback bool        // false: dialback requests are handled and made
}

// effective returns s with the defaults resolved.
func (s Settings) effective() Settings {
	if s.TLS == NegotiateDefault {
		s.TLS = Required
	}
	if s.SASL == NegotiateDefault {
		s.SASL = Optional
	}
	return s
}

// Dialback reports whether dialback may be used at all.
func (s Settings) Dialback() bool { return !s.DisableDialback }

// ErrInvalidSettings is wrapped by the error Validate returns for a
// combination that leaves no way to authenticate.
var ErrInvalidSettings = errors.New("s2s: invalid negotiation settings")

// Validate checks s against the TLS × SASL × dialback matrix (the 18
// combinations of Lync's XMPP partner settings). A combination that can never
// authenticate is an error naming the fields; a combination that works but
// is probably not what the operator meant comes back as warnings.
func (s Settings) Validate() (warnings []string, err error) {
	if s.TLS > NotSupported {
		return nil, fmt.Errorf("%w: TLS: unknown value %d", ErrInvalidSettings, s.TLS)
	}
	if s.SASL > NotSupported {
		return nil, fmt.Errorf("%w: SASL: unknown value %d", ErrInvalidSettings, s.SASL)
	}
	e := s.effective()
	switch {
	case e.SASL == NotSupported && s.DisableDialback:
		return nil, fmt.Errorf("%w: SASL is not-supported and DisableDialback is set: no authentication method is left", ErrInvalidSettings)
	case e.TLS == NotSupported && e.SASL != NotSupported && s.DisableDialback:
		return nil, fmt.Errorf("%w: TLS is not-supported, so SASL (%s) can never run, and DisableDialback is set: no authentication method is left", ErrInvalidSettings, e.SASL)
	}
	if e.SASL != NotSupported && e.TLS != Required {
		warnings = append(warnings, fmt.Sprintf("SASL (%s) needs TLS, which is %s: SASL EXTERNAL is possible only when TLS is negotiated", e.SASL, e.TLS))
	}
	if e.TLS == Required && e.SASL == Required && !s.DisableDialback {
		warnings = append(warnings, "TLS and SASL are both required: dialback will never be used")
	}
	return warnings, nil
}
