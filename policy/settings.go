package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// Negotiation says whether a stream feature (TLS or SASL) must, may or must
// not be negotiated with a partner. The zero value is Required, Lync's
// default for both TLS and SASL.
type Negotiation uint8

// Negotiation values.
const (
	// Required: the stream fails unless the feature is negotiated.
	Required Negotiation = iota
	// Optional: the feature is used when the peer offers it.
	Optional
	// NotSupported: the feature is neither offered nor used, even when the
	// peer offers it.
	NotSupported
)

// String returns "required", "optional" or "not-supported", the spelling
// the policy file uses.
func (n Negotiation) String() string {
	switch n {
	case Required:
		return "required"
	case Optional:
		return "optional"
	case NotSupported:
		return "not-supported"
	}
	return "Negotiation(" + strconv.Itoa(int(n)) + ")"
}

// MarshalText returns the String form.
func (n Negotiation) MarshalText() ([]byte, error) {
	if n > NotSupported {
		return nil, fmt.Errorf("policy: unknown Negotiation %d", n)
	}
	return []byte(n.String()), nil
}

// UnmarshalText accepts "required", "optional" and "not-supported"
// (also "notsupported" and "not_supported", any case).
func (n *Negotiation) UnmarshalText(b []byte) error {
	switch strings.ToLower(string(b)) {
	case "required":
		*n = Required
	case "optional":
		*n = Optional
	case "not-supported", "notsupported", "not_supported":
		*n = NotSupported
	default:
		return fmt.Errorf("policy: %q is not a negotiation value (required, optional, not-supported)", b)
	}
	return nil
}

// PartnerType is a partner's trust level (REFERENCE §4.3). The zero value
// is the least trusted, Lync's default.
type PartnerType uint8

// Partner types.
const (
	// PublicUnverified: the partner's users may subscribe to and message a
	// local user only after that user authorized them; no status notes.
	PublicUnverified PartnerType = iota
	// PublicVerified: the partner vouches for its users: subscriptions are
	// approved and messages delivered without prior approval; no status
	// notes.
	PublicVerified
	// Federated: high trust (same enterprise or a formal agreement): as
	// PublicVerified, and status notes are shared.
	Federated
)

// String returns "public-unverified", "public-verified" or "federated".
func (t PartnerType) String() string {
	switch t {
	case PublicUnverified:
		return "public-unverified"
	case PublicVerified:
		return "public-verified"
	case Federated:
		return "federated"
	}
	return "PartnerType(" + strconv.Itoa(int(t)) + ")"
}

// MarshalText returns the String form.
func (t PartnerType) MarshalText() ([]byte, error) {
	if t > Federated {
		return nil, fmt.Errorf("policy: unknown PartnerType %d", t)
	}
	return []byte(t.String()), nil
}

// UnmarshalText accepts the String forms (also without the hyphen or with
// an underscore, any case: "PublicVerified" works).
func (t *PartnerType) UnmarshalText(b []byte) error {
	s := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(string(b)))
	switch s {
	case "publicunverified":
		*t = PublicUnverified
	case "publicverified":
		*t = PublicVerified
	case "federated":
		*t = Federated
	default:
		return fmt.Errorf("policy: %q is not a partner type (federated, public-verified, public-unverified)", b)
	}
	return nil
}

// SubscribeWithoutApproval reports whether the partner's users may
// subscribe to a local user's presence without that user's approval
// (Federated and PublicVerified).
func (t PartnerType) SubscribeWithoutApproval() bool { return t >= PublicVerified }

// MessageWithoutApproval reports whether the partner's users may message a
// local user who has not authorized them (Federated and PublicVerified).
func (t PartnerType) MessageWithoutApproval() bool { return t >= PublicVerified }

// SharesNote reports whether the local users' personal notes (presence
// status text) go to the partner's users (Federated only).
func (t PartnerType) SharesNote() bool { return t == Federated }

// Settings are a partner's stream negotiation settings: the TLS × SASL ×
// dialback triple of REFERENCE §3. The zero value is Lync's default (row 1
// of the matrix: TLS and SASL required, dialback on but never used).
type Settings struct {
	TLS             Negotiation // zero: Required
	SASL            Negotiation // zero: Required; needs TLS
	DisableDialback bool        // Lync SupportDialbackNegotiation, true by default
}

// Dialback reports whether Server Dialback (XEP-0220) may be used at all.
func (s Settings) Dialback() bool { return !s.DisableDialback }

// Effective returns the settings negotiation actually applies. SASL
// Required can only be enforced when TLS is Required too: with TLS Optional
// or NotSupported the peer can always authenticate without TLS, so the
// matrix (rows 3-5) expects dialback there and SASL Required acts as
// Optional. This is what the W-SASL-TLS warning tells the operator.
func (s Settings) Effective() Settings {
	if s.SASL == Required && s.TLS != Required {
		s.SASL = Optional
	}
	return s
}

// Method is one way a stream can be authenticated.
type Method uint8

// Methods, best first (REFERENCE §3.3).
const (
	// SASLOverTLS is SASL EXTERNAL over TLS (XEP-0178).
	SASLOverTLS Method = 1 << iota
	// TLSDialback is Server Dialback (XEP-0220) over TLS.
	TLSDialback
	// TCPDialback is Server Dialback over plain TCP.
	TCPDialback
)

// Methods is a set of Method values.
type Methods uint8

// Has reports whether m is in the set.
func (ms Methods) Has(m Method) bool { return ms&Methods(m) != 0 }

// String lists the methods best first, as the matrix does ("SASL over
// TLS, TLS dialback, TCP dialback"), or "none".
func (ms Methods) String() string {
	var parts []string
	for _, m := range []Method{SASLOverTLS, TLSDialback, TCPDialback} {
		if ms.Has(m) {
			parts = append(parts, m.String())
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// String returns "SASL over TLS", "TLS dialback" or "TCP dialback".
func (m Method) String() string {
	switch m {
	case SASLOverTLS:
		return "SASL over TLS"
	case TLSDialback:
		return "TLS dialback"
	case TCPDialback:
		return "TCP dialback"
	}
	return "Method(" + strconv.Itoa(int(m)) + ")"
}

// ExpectedMethods returns the authentication methods a stream with a
// partner using s can end up with: the "expected methods" column of the
// matrix (REFERENCE §3.1). Which one a stream uses also depends on the
// peer; the preference is SASL over TLS, then TLS dialback, then TCP
// dialback. An invalid combination returns the empty set.
func (s Settings) ExpectedMethods() Methods {
	e := s.Effective()
	var ms Methods
	if e.TLS != NotSupported && e.SASL != NotSupported {
		ms |= Methods(SASLOverTLS)
	}
	if e.Dialback() && e.SASL != Required {
		if e.TLS != NotSupported {
			ms |= Methods(TLSDialback)
		}
		if e.TLS != Required {
			ms |= Methods(TCPDialback)
		}
	}
	if s.TLS > NotSupported || s.SASL > NotSupported {
		return 0
	}
	return ms
}

// Warning is a setting that works but is probably not what the operator
// meant. Code is stable ("W-SASL-TLS", "W-DB-UNUSED"); Text explains.
type Warning struct {
	Code  string // stable code, e.g. "W-SASL-TLS"
	Field string // the setting it concerns, e.g. "sasl" or "dialback"
	Text  string // an explanation for the operator
}

// String returns "Code: Text".
func (w Warning) String() string { return w.Code + ": " + w.Text }

// Warning codes.
const (
	// WarnSASLNeedsTLS: SASL is not NotSupported while TLS is not
	// Required (rows 3, 4, 5, 9, 10, 11): SASL EXTERNAL runs only when TLS
	// happens to be negotiated.
	WarnSASLNeedsTLS = "W-SASL-TLS"
	// WarnDialbackUnused: TLS and SASL both Required with dialback on
	// (row 1, the default): dialback is never used.
	WarnDialbackUnused = "W-DB-UNUSED"
)

// Validate checks s against the 18-row matrix (REFERENCE §3.3). A
// combination that can never authenticate (rows 6, 12, 14, 16, 18) is a
// *FieldError naming the fields; in strict mode (the Lync Control Panel's
// rule) TLS NotSupported with SASL not NotSupported (rows 5 and 11 too) is
// refused as well. A combination that works but is probably not what the
// operator meant comes back as warnings.
func (s Settings) Validate(strict bool) ([]Warning, error) {
	if s.TLS > NotSupported {
		return nil, &FieldError{Field: "tls", Value: s.TLS.String(), Reason: "unknown value"}
	}
	if s.SASL > NotSupported {
		return nil, &FieldError{Field: "sasl", Value: s.SASL.String(), Reason: "unknown value"}
	}
	switch {
	case s.SASL == NotSupported && s.DisableDialback:
		return nil, &FieldError{Field: "sasl, dialback", Value: "not-supported, false",
			Reason: "no authentication method is left: enable SASL or dialback"}
	case s.TLS == NotSupported && s.SASL != NotSupported && s.DisableDialback:
		return nil, &FieldError{Field: "tls, sasl, dialback", Value: "not-supported, " + s.SASL.String() + ", false",
			Reason: "SASL needs TLS, which is not-supported, and dialback is off: no authentication method is left"}
	case strict && s.TLS == NotSupported && s.SASL != NotSupported:
		return nil, &FieldError{Field: "tls, sasl", Value: "not-supported, " + s.SASL.String(),
			Reason: "SASL needs TLS: with TLS not-supported, SASL must be not-supported too (strict mode)"}
	}
	var ws []Warning
	if s.SASL != NotSupported && s.TLS != Required {
		ws = append(ws, Warning{Code: WarnSASLNeedsTLS, Field: "sasl",
			Text: "SASL (" + s.SASL.String() + ") needs TLS, which is " + s.TLS.String() + ": SASL EXTERNAL runs only when TLS is negotiated, and SASL required acts as optional"})
	}
	if s.TLS == Required && s.SASL == Required && !s.DisableDialback {
		ws = append(ws, Warning{Code: WarnDialbackUnused, Field: "dialback",
			Text: "TLS and SASL are both required: dialback is never used"})
	}
	return ws, nil
}

// FieldError is a configuration value that is refused: Field names the
// setting (as the policy file spells it, dotted for nested ones, e.g.
// "partner[fabrikam.com].tls"), Value what it was, Reason why. Line is the
// line in the policy file it came from, 0 when it did not come from a file.
type FieldError struct {
	Field  string // the setting, as the policy file spells it
	Value  string // the refused value (never a secret)
	Reason string // why it is refused
	Line   int    // line in the policy file; 0 when not from a file
}

// Error returns "policy: [line N: ]Field = "Value": Reason".
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString("policy: ")
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	b.WriteString(e.Field)
	if e.Value != "" {
		b.WriteString(" = ")
		b.WriteString(strconv.Quote(e.Value))
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}
