// Quickstart shows a complete XMPP federation between two chat hosts in
// one process, with nothing to set up and no network beyond loopback:
//
//	go run ./examples/quickstart [-v] [-timeout 5s]
//
// It starts a throw-away certificate authority (certs.TestCA), a DNS
// server on 127.0.0.1 (dnsdiscotest) serving the SRV records of
// _xmpp-server._tcp (RFC 6120 §3.2.1, RFC 2782), and two
// federation.Servers on 127.0.0.1 for the domains contoso.test and
// fabrikam.test, each embedding a small in-memory chat host (alice at
// contoso.test, bob at fabrikam.test) and a *policy.Policy that lists the
// other domain as a Federated partner and turns the global access policy
// on. The two servers find each other through DNS, authenticate with
// STARTTLS and SASL EXTERNAL (XEP-0178) using certificates from the test
// CA, and then carry a conversation, each step printed as one line:
//
//   - a presence subscription request in each direction and its approval
//     (RFC 6121 §3.1; a Federated partner's request is approved by the
//     server for its user, REFERENCE §5.6 #65);
//   - presence changes (available, away with a note, do-not-disturb,
//     offline) mapped to XMPP <show/> and back (RFC 6121 §4.7.2.1,
//     REFERENCE §4.5);
//   - messages both ways, each preceded by an XEP-0085 chat state and
//     acknowledged by an XEP-0184 delivery receipt;
//   - a message to a user that does not exist, bounced to its sender with
//     service-unavailable (RFC 6121 §8.5.2);
//   - a domain that is not a partner refused both ways: Send returns the
//     *policy.Denial, and a third server, for stranger.test, sees its
//     stream to contoso.test refused (REFERENCE §5.2 #17, #18).
//
// Each step waits for what it expects for at most -timeout (5 s). The
// exit status is 0 only if every step happened; otherwise the failing
// step is printed and the status is 1. The servers are then shut down
// (Shutdown delivers or bounces whatever is still queued). With -v the
// XML of every stream is printed too, through federation.Server's
// DebugWriter.
package main
