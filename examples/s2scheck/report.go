package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/federation"
)

// report is the printed form of a federation.CheckReport. Its JSON form is
// the -json output; the field comments document that format.
type report struct {
	Domain       string         `json:"domain"`                        // the domain checked (A-label)
	Note         string         `json:"note,omitempty"`                // set in demo mode
	Policy       string         `json:"policy,omitempty"`              // the policy's view: partner, settings, expected methods
	Refused      string         `json:"refused,omitempty"`             // why the policy refuses the domain
	DNSError     string         `json:"dns_error,omitempty"`           // why discovery failed, if it did
	DNSErrorKind string         `json:"dns_error_condition,omitempty"` // the XMPP condition a server bounces with
	Targets      []targetReport `json:"targets"`                       // candidates in connection order
	Stages       []stageReport  `json:"stages"`                        // every check run, in order
	Streams      []streamReport `json:"streams,omitempty"`             // established streams with the domain now
	LastFailure  string         `json:"last_failure,omitempty"`        // the last failed attempt to reach it
	Reachable    bool           `json:"reachable"`                     // some address completed TLS with a valid certificate
	Auth         string         `json:"auth,omitempty"`                // the auth attempt's outcome when it passed
	Reason       string         `json:"reason,omitempty"`              // why not reachable
}

// targetReport is one SRV (or fallback, or proxy) candidate.
type targetReport struct {
	Host        string   `json:"host"`                    // SRV target (A-label)
	Port        uint16   `json:"port"`                    // TCP port
	DirectTLS   bool     `json:"direct_tls"`              // _xmpps-server (XEP-0368) rather than STARTTLS
	Priority    uint16   `json:"priority"`                // SRV priority
	Weight      uint16   `json:"weight"`                  // SRV weight
	Secure      bool     `json:"dnssec"`                  // SRV answer DNSSEC-authenticated (AD bit)
	Addrs       []string `json:"addresses"`               // AAAA then A
	AddrsSecure bool     `json:"addresses_dnssec"`        // address answers DNSSEC-authenticated
	AddrError   string   `json:"address_error,omitempty"` // why the target has no address
}

// stageReport is one federation.Stage.
type stageReport struct {
	Name     string `json:"name"`             // policy, dns, tcp, tls, certificate, features, auth
	Target   string `json:"target,omitempty"` // the address or name concerned
	OK       bool   `json:"ok"`               // passed
	Detail   string `json:"detail,omitempty"` // what was found
	Error    string `json:"error,omitempty"`  // why it failed
	Duration string `json:"duration"`         // how long it took
}

// streamReport is one established stream of the checking server.
type streamReport struct {
	Direction string `json:"direction"` // inbound or outbound
	Local     string `json:"local"`     // our domain
	Auth      string `json:"auth"`      // sasl-external or dialback
	TLS       string `json:"tls"`       // TLS version, "" without TLS
	Since     string `json:"since"`     // RFC 3339, UTC
}

// newReport turns rep into the printed report and decides reachability: at
// least one address completed TLS with a certificate valid for the domain.
func newReport(domain string, rep *federation.CheckReport) *report {
	r := &report{Domain: domain, Targets: []targetReport{}, Stages: []stageReport{}}
	if rep == nil {
		r.Reason = "no report"
		return r
	}
	r.Domain = rep.Domain
	if rep.Refused != nil {
		r.Refused = rep.Refused.Error()
	}
	for _, t := range rep.Targets {
		tr := targetReport{Host: t.Host, Port: t.Port, DirectTLS: t.DirectTLS, Priority: t.Priority, Weight: t.Weight,
			Secure: t.Secure, AddrsSecure: t.AddrsSecure, Addrs: []string{}}
		for _, a := range t.Addrs {
			tr.Addrs = append(tr.Addrs, a.String())
		}
		if t.Err != nil {
			tr.AddrError = t.Err.Error()
		}
		r.Targets = append(r.Targets, tr)
	}
	var best *federation.Stage
	for i := range rep.Stages {
		st := &rep.Stages[i]
		sr := stageReport{Name: st.Name, Target: st.Target, OK: st.OK, Detail: st.Detail, Duration: round(st.Duration)}
		if st.Err != nil {
			sr.Error = st.Err.Error()
		}
		r.Stages = append(r.Stages, sr)
		switch st.Name {
		case "policy":
			if st.OK {
				r.Policy = st.Detail
			}
		case "dns":
			if st.Err != nil {
				r.DNSError = st.Err.Error()
				var le *dnsdisco.LookupError
				if errors.As(st.Err, &le) {
					r.DNSErrorKind = lookupKind(le)
				}
			}
		case "certificate":
			if st.OK {
				r.Reachable = true
			}
		case "auth":
			if st.OK {
				r.Auth = st.Detail
			}
		}
		if !st.OK && (best == nil || rank(st.Name) > rank(best.Name)) {
			best = st
		}
	}
	for _, si := range rep.Streams {
		r.Streams = append(r.Streams, streamReport{Direction: si.Direction.String(), Local: si.Local, Auth: si.Auth.String(),
			TLS: si.TLSVersion, Since: si.Since.UTC().Format(time.RFC3339)})
	}
	if rep.LastFailure != nil {
		r.LastFailure = rep.LastFailureAt.UTC().Format(time.RFC3339) + ": " + rep.LastFailure.Error()
	}
	switch {
	case r.Reachable:
	case r.Refused != "":
		r.Reason = "refused by the policy: " + r.Refused
	case r.DNSError != "":
		r.Reason = r.DNSError
	case best == nil:
		r.Reason = "no candidate has an address"
	default:
		r.Reason = fmt.Sprintf("best attempt (%s) failed at %s: %v", best.Target, best.Name, best.Err)
	}
	return r
}

// rank orders how far a connection attempt got, for the one-line reason.
func rank(stage string) int {
	switch stage {
	case "tcp":
		return 1
	case "tls":
		return 2
	case "certificate":
		return 3
	}
	return 0
}

// lookupKind names the XMPP condition a server bounces with.
func lookupKind(le *dnsdisco.LookupError) string {
	switch {
	case le.NotFound():
		return "remote-server-not-found"
	case le.Temporary():
		return "remote-server-timeout"
	}
	return ""
}

// writeText prints the report for a person.
func (r *report) writeText(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("s2scheck %s\n", r.Domain)
	if r.Note != "" {
		p("(%s)\n", r.Note)
	}
	p("\nPolicy: ")
	if r.Refused != "" {
		p("REFUSED: %s\n", r.Refused)
	} else {
		p("%s\n", r.Policy)
	}
	p("\nDNS: candidates in connection order\n")
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
		p("  %d. %s  %s  priority %d weight %d  DNSSEC %s\n", i+1, net.JoinHostPort(t.Host, strconv.Itoa(int(t.Port))), mode, t.Priority, t.Weight, yesNo(t.Secure))
		if t.AddrError != "" {
			p("     addresses: none (%s)\n", t.AddrError)
		} else {
			p("     addresses: %s  DNSSEC %s\n", strings.Join(t.Addrs, ", "), yesNo(t.AddrsSecure))
		}
	}

	p("\nStages\n")
	for _, st := range r.Stages {
		mark := "ok  "
		if !st.OK {
			mark = "FAIL"
		}
		p("  %s  %-11s %-22s %s\n", mark, st.Name, st.Target, st.Duration)
		if st.Detail != "" {
			for _, line := range strings.Split(st.Detail, "; ") {
				p("        %s\n", line)
			}
		}
		if st.Error != "" {
			p("        error: %s\n", st.Error)
		}
	}

	p("\nStreams now:")
	if len(r.Streams) == 0 {
		p(" none\n")
	} else {
		p("\n")
	}
	for _, s := range r.Streams {
		p("  %s %s->%s %s over %s since %s\n", s.Direction, s.Local, r.Domain, s.Auth, cmp.Or(s.TLS, "no TLS"), s.Since)
	}
	if r.LastFailure != "" {
		p("Last failure: %s\n", r.LastFailure)
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
