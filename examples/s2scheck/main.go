package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it parses args, runs the check and
// returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("s2scheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		dnsServer = fs.String("dns", "", "nameserver `host:port` to query instead of /etc/resolv.conf")
		caFile    = fs.String("ca", "", "PEM `file` of CA certificates to trust instead of the system roots")
		from      = fs.String("from", "", "`domain` to announce as 'from' in the STARTTLS stream header")
		timeout   = fs.Duration("timeout", 5*time.Second, "bound for each DNS query, connect and handshake")
		asJSON    = fs.Bool("json", false, "print the report as JSON")
	)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: s2scheck [flags] [DOMAIN]\n\nWith no DOMAIN, s2scheck demonstrates itself against an in-process demo domain.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "s2scheck: one DOMAIN at most, got %d arguments\n", fs.NArg())
		return 2
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "s2scheck: -timeout must be positive, got %v\n", *timeout)
		return 2
	}

	c := &checker{
		resolver: &dnsdisco.Resolver{Timeout: *timeout, Attempts: 2},
		timeout:  *timeout,
		from:     *from,
	}
	if *dnsServer != "" {
		c.resolver.Servers = []string{*dnsServer}
	}
	if *caFile != "" {
		pool, err := loadPool(*caFile)
		if err != nil {
			fmt.Fprintf(stderr, "s2scheck: -ca: %v\n", err)
			return 2
		}
		c.roots = pool
	}

	domain := fs.Arg(0)
	var demoNote string
	if domain == "" {
		d, err := startDemo()
		if err != nil {
			fmt.Fprintf(stderr, "s2scheck: starting the demo: %v\n", err)
			return 1
		}
		defer d.Close()
		domain = d.Domain
		c.resolver = d.Resolver
		c.roots = d.Roots
		demoNote = fmt.Sprintf("demo mode: in-process DNS server %s and s2s listeners on loopback, certificates from a test CA", d.DNSAddr)
	}

	rep := c.check(ctx, domain)
	rep.Note = demoNote
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "s2scheck: %v\n", err)
			return 1
		}
	} else {
		rep.writeText(stdout)
	}
	if !rep.Reachable {
		fmt.Fprintf(stderr, "s2scheck: %s is not reachable: %s\n", rep.Domain, rep.Reason)
		return 1
	}
	return 0
}

// loadPool reads a PEM file of CA certificates.
func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// checker holds what one check needs.
type checker struct {
	resolver *dnsdisco.Resolver
	roots    *x509.CertPool // nil: system roots
	timeout  time.Duration
	from     string
}

// check runs DNS discovery and probes every address of every candidate.
func (c *checker) check(ctx context.Context, domain string) *report {
	rep := &report{Domain: domain}
	qctx, cancel := context.WithTimeout(ctx, 4*c.timeout)
	targets, err := c.resolver.LookupServer(qctx, domain)
	cancel()
	if err != nil {
		rep.DNSError = err.Error()
		var le *dnsdisco.LookupError
		if errors.As(err, &le) {
			rep.DNSErrorKind = errorKind(le)
		}
	}
	for _, t := range targets {
		rep.Targets = append(rep.Targets, c.checkTarget(ctx, domain, t))
	}
	rep.conclude()
	return rep
}

// errorKind names the XMPP condition a server would bounce with.
func errorKind(le *dnsdisco.LookupError) string {
	switch {
	case le.NotFound():
		return "remote-server-not-found"
	case le.Temporary():
		return "remote-server-timeout"
	}
	return ""
}

// checkTarget probes each address of one candidate.
func (c *checker) checkTarget(ctx context.Context, domain string, t dnsdisco.Target) targetReport {
	tr := targetReport{
		Host:        t.Host,
		Port:        t.Port,
		DirectTLS:   t.DirectTLS,
		Priority:    t.Priority,
		Weight:      t.Weight,
		Secure:      t.Secure,
		AddrsSecure: t.AddrsSecure,
	}
	if t.Err != nil {
		tr.AddrError = t.Err.Error()
	}
	for _, a := range t.Addrs {
		tr.Addrs = append(tr.Addrs, a.String())
	}

	opts := certs.VerifyOptions{Roots: c.roots}
	// RFC 7673 §3: TLSA records are used only when the SRV answer and the
	// TLSA answer are both DNSSEC-authenticated.
	if t.Secure && len(t.Addrs) > 0 {
		qctx, cancel := context.WithTimeout(ctx, 2*c.timeout)
		recs, secure, err := c.resolver.LookupTLSA(qctx, t.Host, t.Port)
		cancel()
		switch {
		case err != nil:
			tr.TLSAError = err.Error()
		case secure:
			for _, r := range recs {
				opts.TLSA = append(opts.TLSA, certs.TLSA(r))
				tr.TLSA = append(tr.TLSA, fmt.Sprintf("%d %d %d %x", r.Usage, r.Selector, r.MatchingType, r.Data))
			}
			// XEP-0344 / RFC 7673 §4: a secure SRV target name is an
			// acceptable reference identity too.
			opts.SecureNames = []string{t.Host}
		case len(recs) > 0:
			tr.TLSAError = "TLSA records are not DNSSEC-authenticated; ignored"
		}
	}
	for _, a := range t.Addrs {
		tr.Attempts = append(tr.Attempts, c.probe(ctx, domain, t, a, opts))
	}
	return tr
}
