package policy_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/xmppfed/xmppfed/policy"
)

const (
	req = policy.Required
	opt = policy.Optional
	ns  = policy.NotSupported
)

// matrixRow is one row of REFERENCE §3.1, written out literally.
type matrixRow struct {
	row      int
	tls      policy.Negotiation
	sasl     policy.Negotiation
	dialback bool
	methods  string // the "expected auth methods" column
	invalid  bool   // invalid in every mode
	strict   bool   // invalid in strict mode only
	warnings []string
}

var matrix = []matrixRow{
	{1, req, req, true, "SASL over TLS", false, false, []string{policy.WarnDialbackUnused}},
	{2, req, req, false, "SASL over TLS", false, false, nil},
	{3, opt, req, true, "SASL over TLS, TLS dialback, TCP dialback", false, false, []string{policy.WarnSASLNeedsTLS}},
	{4, opt, req, false, "SASL over TLS", false, false, []string{policy.WarnSASLNeedsTLS}},
	{5, ns, req, true, "TCP dialback", false, true, []string{policy.WarnSASLNeedsTLS}},
	{6, ns, req, false, "none", true, true, nil},
	{7, req, opt, true, "SASL over TLS, TLS dialback", false, false, nil},
	{8, req, opt, false, "SASL over TLS", false, false, nil},
	{9, opt, opt, true, "SASL over TLS, TLS dialback, TCP dialback", false, false, []string{policy.WarnSASLNeedsTLS}},
	{10, opt, opt, false, "SASL over TLS", false, false, []string{policy.WarnSASLNeedsTLS}},
	{11, ns, opt, true, "TCP dialback", false, true, []string{policy.WarnSASLNeedsTLS}},
	{12, ns, opt, false, "none", true, true, nil},
	{13, req, ns, true, "TLS dialback", false, false, nil},
	{14, req, ns, false, "none", true, true, nil},
	{15, opt, ns, true, "TLS dialback, TCP dialback", false, false, nil},
	{16, opt, ns, false, "none", true, true, nil},
	{17, ns, ns, true, "TCP dialback", false, false, nil},
	{18, ns, ns, false, "none", true, true, nil},
}

func (r matrixRow) settings() policy.Settings {
	return policy.Settings{TLS: r.tls, SASL: r.sasl, DisableDialback: !r.dialback}
}

// TestMatrix checks REFERENCE §5.1 #8-#11 for all 18 rows.
func TestMatrix(t *testing.T) {
	if len(matrix) != 18 {
		t.Fatalf("the matrix has %d rows; want 18", len(matrix))
	}
	for _, r := range matrix {
		s := r.settings()
		if got := s.ExpectedMethods().String(); got != r.methods {
			t.Errorf("row %d: ExpectedMethods = %q; want %q", r.row, got, r.methods)
		}
		for _, strict := range []bool{false, true} {
			ws, err := s.Validate(strict)
			wantInvalid := r.invalid || strict && r.strict
			if (err != nil) != wantInvalid {
				t.Errorf("row %d strict=%v: Validate error %v; want invalid=%v", r.row, strict, err, wantInvalid)
			}
			if err != nil {
				var fe *policy.FieldError
				if !errors.As(err, &fe) || fe.Field == "" || fe.Reason == "" {
					t.Errorf("row %d: error %#v is not a *FieldError naming a field", r.row, err)
				}
				if len(ws) != 0 {
					t.Errorf("row %d: warnings %v with an error", r.row, ws)
				}
				continue
			}
			var codes []string
			for _, w := range ws {
				codes = append(codes, w.Code)
				if w.Field == "" || w.Text == "" {
					t.Errorf("row %d: warning %+v lacks a field or text", r.row, w)
				}
			}
			if !slices.Equal(codes, r.warnings) {
				t.Errorf("row %d strict=%v: warnings %v; want %v", r.row, strict, codes, r.warnings)
			}
		}
	}
}

// TestMatrixMethodsConsistent checks Effective and the method set against
// each other: a valid row has at least one method, an invalid one none.
func TestMatrixMethodsConsistent(t *testing.T) {
	for _, r := range matrix {
		s := r.settings()
		if (s.ExpectedMethods() == 0) != r.invalid {
			t.Errorf("row %d: methods %v, invalid %v", r.row, s.ExpectedMethods(), r.invalid)
		}
		e := s.Effective()
		if e.TLS != s.TLS || e.DisableDialback != s.DisableDialback {
			t.Errorf("row %d: Effective changed TLS or dialback: %+v", r.row, e)
		}
		wantSASL := s.SASL
		if s.SASL == req && s.TLS != req {
			wantSASL = opt
		}
		if e.SASL != wantSASL {
			t.Errorf("row %d: Effective SASL %v; want %v", r.row, e.SASL, wantSASL)
		}
	}
	bad := policy.Settings{TLS: 7}
	if bad.ExpectedMethods() != 0 {
		t.Errorf("unknown TLS value: methods %v; want none", bad.ExpectedMethods())
	}
	if _, err := bad.Validate(false); err == nil {
		t.Error("unknown TLS value validated")
	}
	if _, err := (policy.Settings{SASL: 9}).Validate(false); err == nil {
		t.Error("unknown SASL value validated")
	}
}

func TestTextForms(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want policy.Negotiation
	}{{"required", req}, {"Optional", opt}, {"not-supported", ns}, {"NOTSUPPORTED", ns}, {"not_supported", ns}} {
		var n policy.Negotiation
		if err := n.UnmarshalText([]byte(tc.in)); err != nil || n != tc.want {
			t.Errorf("Negotiation.UnmarshalText(%q) = %v, %v; want %v", tc.in, n, err, tc.want)
		}
		b, err := n.MarshalText()
		if err != nil || string(b) != tc.want.String() {
			t.Errorf("MarshalText(%v) = %q, %v", n, b, err)
		}
	}
	var n policy.Negotiation
	if err := n.UnmarshalText([]byte("sometimes")); err == nil {
		t.Error(`Negotiation.UnmarshalText("sometimes") succeeded`)
	}
	if _, err := policy.Negotiation(5).MarshalText(); err == nil {
		t.Error("MarshalText of an unknown Negotiation succeeded")
	}
	for _, tc := range []struct {
		in   string
		want policy.PartnerType
	}{{"federated", policy.Federated}, {"PublicVerified", policy.PublicVerified}, {"public_unverified", policy.PublicUnverified}, {"public-verified", policy.PublicVerified}} {
		var pt policy.PartnerType
		if err := pt.UnmarshalText([]byte(tc.in)); err != nil || pt != tc.want {
			t.Errorf("PartnerType.UnmarshalText(%q) = %v, %v; want %v", tc.in, pt, err, tc.want)
		}
		b, err := pt.MarshalText()
		if err != nil || string(b) != tc.want.String() {
			t.Errorf("MarshalText(%v) = %q, %v", pt, b, err)
		}
	}
	var pt policy.PartnerType
	if err := pt.UnmarshalText([]byte("trusted")); err == nil {
		t.Error(`PartnerType.UnmarshalText("trusted") succeeded`)
	}
	if _, err := policy.PartnerType(3).MarshalText(); err == nil {
		t.Error("MarshalText of an unknown PartnerType succeeded")
	}
	for ty, want := range map[policy.PartnerType][3]bool{
		policy.Federated:        {true, true, true},
		policy.PublicVerified:   {true, true, false},
		policy.PublicUnverified: {false, false, false},
	} {
		got := [3]bool{ty.SubscribeWithoutApproval(), ty.MessageWithoutApproval(), ty.SharesNote()}
		if got != want {
			t.Errorf("%v: subscribe, message, note = %v; want %v (REFERENCE §4.3)", ty, got, want)
		}
	}
}

// FuzzUnmarshalText checks that the enum parsers never panic and that what
// they accept round-trips through MarshalText.
func FuzzUnmarshalText(f *testing.F) {
	for _, s := range []string{"required", "Not_Supported", "federated", "Public-Verified", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var n policy.Negotiation
		if n.UnmarshalText([]byte(s)) == nil {
			b, err := n.MarshalText()
			var again policy.Negotiation
			if err != nil || again.UnmarshalText(b) != nil || again != n {
				t.Fatalf("Negotiation %q: round trip %q, %v", s, b, err)
			}
		}
		var pt policy.PartnerType
		if pt.UnmarshalText([]byte(s)) == nil {
			b, err := pt.MarshalText()
			var again policy.PartnerType
			if err != nil || again.UnmarshalText(b) != nil || again != pt {
				t.Fatalf("PartnerType %q: round trip %q, %v", s, b, err)
			}
		}
	})
}
