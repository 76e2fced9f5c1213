package federationtest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/federation/federationtest"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/translate"
)

// A vendor's test of its wiring: its federation.Server (here with the
// recording Backend; a vendor passes its own) serves host.example in an
// Env, and a fake remote domain's user talks to it. In a test, pass t to
// NewEnv and let it clean up.
func ExampleNewEnv() {
	env := federationtest.NewEnv(nil)
	defer env.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	backend := new(federationtest.Backend)
	ann := jid.MustParse("ann@host.example")
	backend.AddUser(ann, policy.User{})
	srv := &federation.Server{
		Domains:   []string{"host.example"},
		TLSConfig: env.TLSConfig("host.example"), // issued by the Env's CA
		Verify:    env.Verify(),                  // trusts the Env's CA
		Resolver:  env.Resolver(),                // asks the Env's DNS
		Policy:    env.Policy(backend, policy.Partner{Domain: "remote.example", Type: policy.Federated}),
		Backend:   backend,
	}
	l := env.Listen("host.example") // published by SRV in the Env's DNS
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	defer func() {
		_ = srv.Close()
		<-done
	}()

	rick := env.NewDomain("remote.example").User("rick")
	if err := rick.SendMessage(ctx, "ann@host.example", "Hello, Ann"); err != nil {
		panic(err)
	}
	m, err := backend.NextMessage(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s -> %s: %s\n", m.From, m.To, m.Body)

	if err := srv.Send(ctx, &translate.Message{From: ann, To: m.From, Body: "Hi, Rick"}); err != nil {
		panic(err)
	}
	v, err := rick.Next(ctx)
	if err != nil {
		panic(err)
	}
	reply := v.(*translate.Message)
	fmt.Printf("%s -> %s: %s\n", reply.From, reply.To, reply.Body)

	if err := rick.SendMessage(ctx, "nobody@host.example", "Anyone?"); err != nil {
		panic(err)
	}
	e, err := rick.NextError(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("to nobody@host.example:", e.Err.Condition)
	// Output:
	// rick@remote.example/federationtest -> ann@host.example: Hello, Ann
	// ann@host.example -> rick@remote.example/federationtest: Hi, Rick
	// to nobody@host.example: service-unavailable
}

// Two fake domains talk to each other: what a user sends is decoded for
// the other as it came; what cannot be delivered comes back as an error.
func ExampleDomain() {
	env := federationtest.NewEnv(nil)
	defer env.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	alice := env.NewDomain("a.example").User("alice")
	bob := env.NewDomain("b.example").User("bob")

	if err := alice.Subscribe(ctx, "bob@b.example"); err != nil {
		panic(err)
	}
	v, err := bob.Next(ctx)
	if err != nil {
		panic(err)
	}
	s := v.(*translate.Subscription)
	fmt.Println(s.From, s.Action, s.To)

	if err := bob.SendPresence(ctx, "alice@a.example", translate.DoNotDisturb, "in a meeting"); err != nil {
		panic(err)
	}
	v, err = alice.Next(ctx)
	if err != nil {
		panic(err)
	}
	p := v.(*translate.Presence)
	fmt.Println(p.From.Bare(), p.Availability, p.Note)

	if err := alice.SendMessage(ctx, "carol@b.example", "Hi, Carol"); err != nil {
		panic(err)
	}
	e, err := alice.NextError(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(e.From, e.Err.Condition)
	// Output:
	// alice@a.example subscribe bob@b.example
	// bob@b.example do-not-disturb in a meeting
	// carol@b.example service-unavailable
}

// A Domain pings a server (XEP-0199): a domain whose DNS says it offers no
// XMPP service is not found.
func ExampleDomain_Ping() {
	env := federationtest.NewEnv(nil)
	defer env.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	a := env.NewDomain("a.example")
	env.NewDomain("b.example")
	fmt.Println("b.example:", a.Ping(ctx, "b.example"))

	env.DNS().AddSRV("_xmpp-server._tcp", "gone.example", ".", 0, 0, 0)
	env.DNS().AddSRV("_xmpps-server._tcp", "gone.example", ".", 0, 0, 0)
	var se stanza.Error
	if err := a.Ping(ctx, "gone.example"); errors.As(err, &se) {
		fmt.Println("gone.example:", se.Condition)
	}
	// Output:
	// b.example: <nil>
	// gone.example: remote-server-not-found
}

// The recording Backend stands in for a host: users, their presence, and
// the errors a host returns.
func ExampleBackend() {
	ctx := context.Background()
	b := new(federationtest.Backend)
	ann := jid.MustParse("ann@host.example")
	rick := jid.MustParse("rick@remote.example/phone")
	b.AddUser(ann, policy.User{})

	_ = b.DeliverMessage(ctx, &translate.Message{From: rick, To: ann, Body: "one"})
	b.SetOffline(ann, true)
	err := b.DeliverMessage(ctx, &translate.Message{From: rick, To: ann, Body: "two"})
	fmt.Println("offline:", translate.StanzaError(err).Condition)
	err = b.DeliverMessage(ctx, &translate.Message{From: rick, To: jid.MustParse("zoe@host.example"), Body: "three"})
	fmt.Println("unknown:", translate.StanzaError(err).Condition)

	b.SetPresence(ann, translate.Presence{Availability: translate.Away})
	p, _ := b.CurrentPresence(ctx, ann)
	fmt.Println("presence:", p.Availability)
	for _, m := range b.Messages() {
		fmt.Println("delivered:", m.Body)
	}
	// Output:
	// offline: recipient-unavailable
	// unknown: service-unavailable
	// presence: away
	// delivered: one
}
