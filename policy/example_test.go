package policy_test

import (
	"context"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"

	"github.com/xmppfed/xmppfed/policy"
)

func ExampleNew() {
	ctx := context.Background()
	store := policy.NewMemStore(&policy.Config{
		Partners: []policy.Partner{
			{Domain: "Fabrikam.com", AdditionalDomains: []string{"fabrikam.net"}, Type: policy.Federated},
			{Domain: "gmail.com", Settings: policy.Settings{TLS: policy.NotSupported, SASL: policy.NotSupported}, DisableKeepAlive: true},
		},
	})
	pol, err := policy.New(ctx, store, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("secret generated:", pol.Gateway().DialbackSecret.Len(), "bytes,", pol.Gateway().DialbackSecret)
	for _, d := range []string{"fabrikam.net", "gmail.com", "x.fabrikam.com"} {
		r, err := pol.Remote(d)
		if err != nil {
			fmt.Println(d, "refused:", err)
			continue
		}
		fmt.Printf("%s: partner %s, %s, methods %v, keepalive %v, %d streams\n",
			d, r.Partner, r.Type, r.Settings.ExpectedMethods(), r.KeepAlive, r.ConnectionLimit)
	}
	// Output:
	// secret generated: 32 bytes, [redacted]
	// fabrikam.net: partner fabrikam.com, federated, methods SASL over TLS, keepalive 5m0s, 20 streams
	// gmail.com: partner gmail.com, public-unverified, methods TCP dialback, keepalive 0s, 20 streams
	// x.fabrikam.com refused: policy: domain "x.fabrikam.com" is not a federation partner
}

func ExamplePolicy_Apply() {
	ctx := context.Background()
	pol, err := policy.New(ctx, policy.NewMemStore(nil), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	edits := []policy.Edit{
		policy.AddPartner(policy.Partner{Domain: "contoso.com", Settings: policy.Settings{TLS: policy.Optional, SASL: policy.Optional}}),
		policy.SetAccessPolicy(policy.AccessPolicy{Name: "global", EnableXMPPAccess: true, EnableFederationAccess: true}),
	}
	// A dry run reports what would change and changes nothing.
	rep, err := pol.Apply(ctx, policy.ApplyOptions{DryRun: true}, edits...)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("would add:", rep.Added)
	for _, w := range rep.Warnings {
		fmt.Println("warning:", w.Field, w.Code)
	}
	_, err = pol.Remote("contoso.com")
	fmt.Println("after the dry run:", err)

	if _, err := pol.Apply(ctx, policy.ApplyOptions{}, edits...); err != nil {
		fmt.Println(err)
		return
	}
	r, err := pol.Remote("contoso.com")
	fmt.Println("after Apply:", r.Partner, r.Generation, err)

	// An invalid change is refused as a whole.
	_, err = pol.Apply(ctx, policy.ApplyOptions{},
		policy.AddPartner(policy.Partner{Domain: "litware.com"}),
		policy.AddPartner(policy.Partner{Domain: "adatum.com", Settings: policy.Settings{SASL: policy.NotSupported, DisableDialback: true}}))
	fmt.Println(err)
	fmt.Println(len(pol.Partners("")), "partner(s)")
	// Output:
	// would add: [contoso.com policy:global]
	// warning: partner[contoso.com].sasl W-SASL-TLS
	// after the dry run: policy: domain "contoso.com" is not a federation partner
	// after Apply: contoso.com 2 <nil>
	// policy: partner[adatum.com].sasl, dialback = "not-supported, false": no authentication method is left: enable SASL or dialback
	// 1 partner(s)
}

func ExampleSettings_Validate() {
	for _, s := range []policy.Settings{
		{}, // row 1, the default
		{TLS: policy.NotSupported, SASL: policy.Required},                        // row 5
		{TLS: policy.Required, SASL: policy.NotSupported, DisableDialback: true}, // row 14
	} {
		ws, err := s.Validate(false)
		for _, w := range ws {
			fmt.Println(w)
		}
		if err != nil {
			fmt.Println(err)
		}
		if _, err := s.Validate(true); err != nil {
			fmt.Println("strict:", err)
		}
	}
	// Output:
	// W-DB-UNUSED: TLS and SASL are both required: dialback is never used
	// W-SASL-TLS: SASL (required) needs TLS, which is not-supported: SASL EXTERNAL runs only when TLS is negotiated, and SASL required acts as optional
	// strict: policy: tls, sasl = "not-supported, required": SASL needs TLS: with TLS not-supported, SASL must be not-supported too (strict mode)
	// policy: sasl, dialback = "not-supported, false": no authentication method is left: enable SASL or dialback
	// strict: policy: sasl, dialback = "not-supported, false": no authentication method is left: enable SASL or dialback
}

func ExampleSettings_ExpectedMethods() {
	row := 0
	for _, sasl := range []policy.Negotiation{policy.Required, policy.Optional, policy.NotSupported} {
		for _, tls := range []policy.Negotiation{policy.Required, policy.Optional, policy.NotSupported} {
			for _, dialback := range []bool{true, false} {
				row++
				s := policy.Settings{TLS: tls, SASL: sasl, DisableDialback: !dialback}
				fmt.Printf("%2d %-13s %-13s %-5v %v\n", row, tls, sasl, dialback, s.ExpectedMethods())
			}
		}
	}
	// Output:
	//  1 required      required      true  SASL over TLS
	//  2 required      required      false SASL over TLS
	//  3 optional      required      true  SASL over TLS, TLS dialback, TCP dialback
	//  4 optional      required      false SASL over TLS
	//  5 not-supported required      true  TCP dialback
	//  6 not-supported required      false none
	//  7 required      optional      true  SASL over TLS, TLS dialback
	//  8 required      optional      false SASL over TLS
	//  9 optional      optional      true  SASL over TLS, TLS dialback, TCP dialback
	// 10 optional      optional      false SASL over TLS
	// 11 not-supported optional      true  TCP dialback
	// 12 not-supported optional      false none
	// 13 required      not-supported true  TLS dialback
	// 14 required      not-supported false none
	// 15 optional      not-supported true  TLS dialback, TCP dialback
	// 16 optional      not-supported false none
	// 17 not-supported not-supported true  TCP dialback
	// 18 not-supported not-supported false none
}

func ExamplePolicy_CheckUser() {
	ctx := context.Background()
	users := new(policy.UserTable)
	users.Set(jid.MustParse("alice@example.com"), policy.User{Site: "Redmond"})
	users.Set(jid.MustParse("bob@example.com"), policy.User{Site: "Redmond", Policy: "NoXMPP"})
	users.Set(jid.MustParse("carol@example.com"), policy.User{})
	pol, err := policy.New(ctx, policy.NewMemStore(&policy.Config{
		Policies: []policy.AccessPolicy{
			{Name: "site:Redmond", EnableXMPPAccess: true, EnableFederationAccess: true},
			{Name: "tag:NoXMPP"},
		},
	}), &policy.Options{Directory: users})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, u := range []string{"alice@example.com/phone", "bob@example.com", "carol@example.com", "dave@example.com"} {
		err := pol.CheckUser(ctx, jid.MustParse(u))
		var d *policy.Denial
		if errors.As(err, &d) {
			fmt.Printf("%s: %s (%s)\n", u, d.Rule, d.StanzaError().Condition)
			continue
		}
		fmt.Printf("%s: allowed %v\n", u, err)
	}
	// Output:
	// alice@example.com/phone: allowed <nil>
	// bob@example.com: no_xmpp_access (service-unavailable)
	// carol@example.com: no_xmpp_access (service-unavailable)
	// dave@example.com: unknown_user (service-unavailable)
}
