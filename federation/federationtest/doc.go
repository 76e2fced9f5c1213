// Package federationtest lets a chat-server vendor unit-test its wiring of
// federation.Server without any real XMPP server, the way net/http/httptest
// lets one test an http.Handler: everything runs on 127.0.0.1, with real
// TLS from a test CA (certs.TestCA) and real DNS from a loopback server
// (dnsdiscotest), so the server under test goes through the same SRV
// lookup (RFC 6120 §3.2), STARTTLS or direct TLS (XEP-0368) and SASL
// EXTERNAL (XEP-0178) as in production.
//
// An Env is one test's world: NewEnv(t) creates the CA and the DNS server
// and closes everything when the test ends. The server under test takes
// its TLSConfig, Verify, Resolver and a listener published in the DNS
// from the Env (Env.TLSConfig, Env.Verify, Env.Resolver, Env.Listen),
// and Env.Policy builds it a policy.
//
// A Domain (Env.NewDomain) is a fake remote XMPP domain: an s2s.Server on
// loopback with its SRV record and certificate, and users a test scripts
// (Domain.User). A User sends IMs, presence and subscription requests and
// answers (translate values, encoded with translate.Encode), and records
// what arrives for it, decoded with translate.Decode (User.Next,
// User.Expect), and the stanza errors its stanzas got (User.NextError).
// The Domain is a scripted peer, not a server: it keeps no roster and
// aggregates no presence, it records every stanza as it came
// (Domain.NextRaw), answers XEP-0199 pings, and refuses what its policy
// (open federation, or Partners) and translate.Decode refuse, with the
// stanza errors of RFC 6120 §8.3.
// A long-running test (a soak) passes the Sink option to NewDomain: what
// arrives for the Domain's users then goes to a callback instead of being
// recorded, so memory does not grow with the stanzas received.
//
// Backend is a ready, recording in-memory federation.Backend: users,
// roster, presence, configurable delivery failures, and every delivered or
// bounced value recorded for NextMessage, NextPresence, NextSubscription
// and NextBounce. TestBackend is the conformance suite a host runs against
// its own Backend.
//
// Setup failures (no port, no certificate) panic, as in httptest; the Next
// methods wait until their context ends, so give tests a deadline.
//
//	func TestWiring(t *testing.T) {
//		env := federationtest.NewEnv(t)
//		srv := newMyServer(env.TLSConfig("host.example"), env.Verify(), env.Resolver())
//		go srv.Serve(env.Listen("host.example"))
//		t.Cleanup(func() { srv.Close() })
//		rick := env.NewDomain("remote.example").User("rick")
//		rick.SendMessage(ctx, "ann@host.example", "hello")
//		// ... assert the host got it; answer; rick.Expect(t, ctx, ...)
//	}
package federationtest
