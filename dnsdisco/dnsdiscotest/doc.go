// Package dnsdiscotest provides a loopback DNS server for tests of code
// that uses package dnsdisco, in the style of net/http/httptest.
//
// The server listens on 127.0.0.1 on one random port for both UDP and TCP,
// answers authoritatively from records added with the Add methods, and
// panics if it cannot start. Names not added get NXDOMAIN, names that exist
// with other types (or only have names below them) get NODATA; both carry
// a SOA record with TTL 300 and MINIMUM 60 in the authority section, so
// negative answers are cached for 60 seconds (RFC 2308 §5). CNAMEs are
// followed inside the server the way a recursive resolver would.
//
//	s := dnsdiscotest.NewServer()
//	defer s.Close()
//	s.AddSRV("_xmpp-server._tcp", "example.org", "xmpp.example.org", 5269, 0, 0)
//	s.AddHost("xmpp.example.org", netip.MustParseAddr("127.0.0.1"))
//	targets, err := s.Resolver().LookupServer(ctx, "example.org")
package dnsdiscotest
