package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// report is everything s2scheck learnt about one domain. Its JSON form is
// the -json output; the field comments document that format.
type report struct {
	Domain       string         `json:"domain"`                        // the domain as given
	Note         string         `json:"note,omitempty"`                // set in demo mode
	DNSError     string         `json:"dns_error,omitempty"`           // why discovery failed, if it did
	DNSErrorKind string         `json:"dns_error_condition,omitempty"` // the XMPP condition a server would bounce with
	Targets      []targetReport `json:"targets"`                       // candidates in connection order
	Reachable    bool           `json:"reachable"`                     // some address completed TLS with a valid certificate
	Reason       string         `json:"reason,omitempty"`              // why not reachable
}

// targetReport is one SRV (or fallback) candidate.
type targetReport struct {
	Host        string          `json:"host"`                    // SRV target (A-label)
	Port        uint16          `json:"port"`                    // TCP port
	DirectTLS   bool            `json:"direct_tls"`              // _xmpps-server (XEP-0368) rather than STARTTLS
	Priority    uint16          `json:"priority"`                // SRV priority
	Weight      uint16          `json:"weight"`                  // SRV weight
	Secure      bool            `json:"dnssec"`                  // SRV answer DNSSEC-authenticated (AD bit)
	Addrs       []string        `json:"addresses"`               // AAAA then A
	AddrsSecure bool            `json:"addresses_dnssec"`        // address answers DNSSEC-authenticated
	AddrError   string          `json:"address_error,omitempty"` // why the target has no address
	TLSA        []string        `json:"tlsa,omitempty"`          // DNSSEC-secure TLSA records, "usage selector type hex"
	TLSAError   string          `json:"tlsa_error,omitempty"`    // why TLSA records are not used
	Attempts    []attemptReport `json:"attempts"`                // one per address
}

// attemptReport is one connection attempt to one address.
type attemptReport struct {
	Addr        string       `json:"address"`                // ip:port
	TCP         bool         `json:"tcp"`                    // TCP connected
	TCPTime     string       `json:"tcp_time,omitempty"`     // how long the connect took
	TLS         bool         `json:"tls"`                    // the TLS handshake completed
	TLSTime     string       `json:"tls_time,omitempty"`     // how long the handshake took
	TLSVersion  string       `json:"tls_version,omitempty"`  // e.g. "TLS 1.3"
	CipherSuite string       `json:"cipher_suite,omitempty"` // e.g. "TLS_AES_128_GCM_SHA256"
	ALPN        string       `json:"alpn,omitempty"`         // negotiated protocol ("xmpp-server" for direct TLS)
	Error       string       `json:"error,omitempty"`        // why the attempt failed
	Certificate *certReport  `json:"certificate,omitempty"`  // the peer's leaf, once TLS completed
	Stage       string       `json:"failed_at,omitempty"`    // tcp, starttls, tls or verify
	stageRank   attemptStage // how far the attempt got, for the summary
}

// certReport describes the peer's leaf certificate and its verification.
type certReport struct {
	Subject     string   `json:"subject"`                // leaf subject DN
	Issuer      string   `json:"issuer"`                 // leaf issuer DN
	NotBefore   string   `json:"not_before"`             // RFC 3339, UTC
	NotAfter    string   `json:"not_after"`              // RFC 3339, UTC
	Names       []string `json:"names"`                  // every identity presented (SRV-ID, XmppAddr, DNS-ID, CN)
	Verified    bool     `json:"verified"`               // the overall decision: DANE where usable TLSA records exist, else PKIX
	VerifyError string   `json:"verify_error,omitempty"` // why not Verified
	PKIXMatched string   `json:"pkix_matched,omitempty"` // the identity that matched under PKIX (chain to a trusted root)
	PKIXError   string   `json:"pkix_error,omitempty"`   // why PKIX failed
	DANEMatched string   `json:"dane_matched,omitempty"` // the TLSA record that matched
	DANEError   string   `json:"dane_error,omitempty"`   // why DANE failed or did not apply
}

// attemptStage orders how far an attempt got.
type attemptStage int

const (
	stageNone attemptStage = iota
	stageTCP
	stageTLS
	stageVerified
)

// conclude sets Reachable and, when not reachable, the one-line Reason from
// the attempt that got furthest.
func (r *report) conclude() {
	var best *attemptReport
	for i := range r.Targets {
		for j := range r.Targets[i].Attempts {
			a := &r.Targets[i].Attempts[j]
			if best == nil || a.stageRank > best.stageRank {
				best = a
			}
		}
	}
	switch {
	case best != nil && best.stageRank == stageVerified:
		r.Reachable = true
	case r.DNSError != "":
		r.Reason = r.DNSError
	case best == nil:
		r.Reason = "no candidate has an address"
	default:
		r.Reason = fmt.Sprintf("best attempt (%s) failed at %s: %s", best.Addr, best.Stage, best.Error)
	}
}

// writeText prints the report for a person.
func (r *report) writeText(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("s2scheck %s\n", r.Domain)
	if r.Note != "" {
		p("(%s)\n", r.Note)
	}
	p("\nDNS: _xmpps-server._tcp and _xmpp-server._tcp, in connection order\n")
	if r.DNSError != "" {
		p("  error: %s", r.DNSError)
		if r.DNSErrorKind != "" {
			p(" [a server would bounce with %s]", r.DNSErrorKind)
		}
		p("\n")
	}
	if len(r.Targets) == 0 {
		p("  no candidates\n")
	}
	for i, t := range r.Targets {
		mode := "STARTTLS"
		if t.DirectTLS {
			mode = "direct TLS"
		}
		p("  %d. %s:%d  %s  priority %d weight %d  DNSSEC %s\n", i+1, t.Host, t.Port, mode, t.Priority, t.Weight, yesNo(t.Secure))
		if t.AddrError != "" {
			p("     addresses: none (%s)\n", t.AddrError)
		} else {
			p("     addresses: %s  DNSSEC %s\n", strings.Join(t.Addrs, ", "), yesNo(t.AddrsSecure))
		}
		for _, rec := range t.TLSA {
			p("     TLSA: %s\n", rec)
		}
		if t.TLSAError != "" {
			p("     TLSA: %s\n", t.TLSAError)
		}
	}

	p("\nConnections\n")
	n := 0
	for _, t := range r.Targets {
		for _, a := range t.Attempts {
			n++
			p("  %s (%s:%d)\n", a.Addr, t.Host, t.Port)
			if !a.TCP {
				p("     TCP:  failed: %s\n", a.Error)
				continue
			}
			p("     TCP:  connected in %s\n", a.TCPTime)
			if !a.TLS {
				p("     TLS:  failed at %s: %s\n", a.Stage, a.Error)
				continue
			}
			alpn := a.ALPN
			if alpn == "" {
				alpn = "none"
			}
			p("     TLS:  %s %s in %s, ALPN %s\n", a.TLSVersion, a.CipherSuite, a.TLSTime, alpn)
			if c := a.Certificate; c != nil {
				p("     certificate: subject %q, issuer %q\n", c.Subject, c.Issuer)
				p("       valid %s to %s\n", c.NotBefore, c.NotAfter)
				if len(c.Names) == 0 {
					p("       names: none\n")
				} else {
					p("       names: %s\n", strings.Join(c.Names, ", "))
				}
				if c.PKIXError == "" {
					p("       PKIX: valid, matched %s\n", c.PKIXMatched)
				} else {
					p("       PKIX: NOT valid: %s\n", c.PKIXError)
				}
				switch {
				case c.DANEMatched != "":
					p("       DANE: matched %s\n", c.DANEMatched)
				case c.DANEError != "":
					p("       DANE: %s\n", c.DANEError)
				}
				if c.Verified {
					p("       verifies for %s: yes\n", r.Domain)
				} else {
					p("       verifies for %s: NO: %s\n", r.Domain, c.VerifyError)
				}
			}
		}
	}
	if n == 0 {
		p("  none attempted\n")
	}

	p("\nResult: ")
	if r.Reachable {
		p("%s is reachable for server-to-server federation\n", r.Domain)
	} else {
		p("%s is NOT reachable: %s\n", r.Domain, r.Reason)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// round makes durations readable.
func round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}
