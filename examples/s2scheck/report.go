package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Report is everything s2scheck learnt about one domain. Its JSON form is the
// -json output.
type Report struct {
	Domain       string         `json:"domain"`
	Note         string         `json:"note,omitempty"`
	DNSError     string         `json:"dns_error,omitempty"`
	DNSErrorKind string         `json:"dns_error_condition,omitempty"` // the XMPP condition a server would bounce with
	Targets      []TargetReport `json:"targets"`
	Reachable    bool           `json:"reachable"`
	Reason       string         `json:"reason,omitempty"` // why not reachable
}

// TargetReport is one SRV (or fallback) candidate.
type TargetReport struct {
	Host        string          `json:"host"`
	Port        uint16          `json:"port"`
	DirectTLS   bool            `json:"direct_tls"`
	Priority    uint16          `json:"priority"`
	Weight      uint16          `json:"weight"`
	Secure      bool            `json:"dnssec"`
	Addrs       []string        `json:"addresses"`
	AddrsSecure bool            `json:"addresses_dnssec"`
	AddrError   string          `json:"address_error,omitempty"`
	TLSA        []string        `json:"tlsa,omitempty"`
	TLSAError   string          `json:"tlsa_error,omitempty"`
	Attempts    []AttemptReport `json:"attempts"`
}

// AttemptReport is one connection attempt to one address.
type AttemptReport struct {
	Addr        string       `json:"address"`
	TCP         bool         `json:"tcp"`
	TCPTime     string       `json:"tcp_time,omitempty"`
	TLS         bool         `json:"tls"`
	TLSTime     string       `json:"tls_time,omitempty"`
	TLSVersion  string       `json:"tls_version,omitempty"`
	CipherSuite string       `json:"cipher_suite,omitempty"`
	ALPN        string       `json:"alpn,omitempty"`
	Error       string       `json:"error,omitempty"`
	Certificate *CertReport  `json:"certificate,omitempty"`
	Stage       string       `json:"failed_at,omitempty"` // tcp, starttls, tls or verify
	stageRank   attemptStage // how far the attempt got, for the summary
}

// CertReport describes the peer's leaf certificate and its verification.
type CertReport struct {
	Subject     string   `json:"subject"`
	Issuer      string   `json:"issuer"`
	NotBefore   string   `json:"not_before"`
	NotAfter    string   `json:"not_after"`
	Names       []string `json:"names"`
	Verified    bool     `json:"verified"`               // the overall decision: DANE where usable TLSA records exist, else PKIX
	VerifyError string   `json:"verify_error,omitempty"` // why not Verified
	PKIXMatched string   `json:"pkix_matched,omitempty"` // the identity that matched under PKIX (chain to a trusted root)
	PKIXError   string   `json:"pkix_error,omitempty"`
	DANEMatched string   `json:"dane_matched,omitempty"` // the TLSA record that matched
	DANEError   string   `json:"dane_error,omitempty"`
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
func (r *Report) conclude() {
	var best *AttemptReport
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
func (r *Report) writeText(w io.Writer) {
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
