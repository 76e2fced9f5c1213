package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
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
		from      = fs.String("from", "", "our `domain`: the 'from' of the stream headers and the domain the auth attempt uses")
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
	var roots *x509.CertPool
	if *caFile != "" {
		pool, err := loadPool(*caFile)
		if err != nil {
			fmt.Fprintf(stderr, "s2scheck: -ca: %v\n", err)
			return 2
		}
		roots = pool
	}

	domain := fs.Arg(0)
	var (
		srv  *federation.Server
		note string
	)
	if domain == "" {
		d, err := startDemo(*timeout)
		if err != nil {
			fmt.Fprintf(stderr, "s2scheck: starting the demo: %v\n", err)
			return 1
		}
		defer d.Close()
		domain, srv = d.Domain, d.Checker
		note = fmt.Sprintf("demo mode: in-process DNS server %s and two federation Servers (%s checking %s) on loopback, certificates from a test CA", d.DNSAddr, checkerDomain, demoDomain)
	} else {
		resolver := &dnsdisco.Resolver{Timeout: *timeout, Attempts: 2}
		if *dnsServer != "" {
			resolver.Servers = []string{*dnsServer}
		}
		var err error
		srv, err = checkServer(ctx, *from, roots, resolver, *timeout)
		if err != nil {
			fmt.Fprintf(stderr, "s2scheck: %v\n", err)
			return 2
		}
		defer srv.Close()
	}

	rep, err := srv.Check(ctx, domain)
	if err != nil && rep == nil {
		fmt.Fprintf(stderr, "s2scheck: %v\n", err)
		return 1
	}
	out := newReport(domain, rep)
	out.Note = note
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "s2scheck: %v\n", err)
			return 1
		}
	} else {
		out.writeText(stdout)
	}
	if !out.Reachable {
		fmt.Fprintf(stderr, "s2scheck: %s is not reachable: %s\n", out.Domain, out.Reason)
		return 1
	}
	return 0
}

// checkServer is the federation.Server a check of any domain runs from: no
// certificate of its own unless the operator's domain has one elsewhere, a
// policy that admits every domain (open federation) with TLS required and
// SASL EXTERNAL or dialback accepted, and from (if set) as its domain.
func checkServer(ctx context.Context, from string, roots *x509.CertPool, resolver *dnsdisco.Resolver, timeout time.Duration) (*federation.Server, error) {
	pol, err := policy.New(ctx, policy.NewMemStore(&policy.Config{Gateway: policy.Gateway{
		OpenFederation: true,
		DefaultPartner: policy.Partner{Settings: policy.Settings{TLS: policy.Required, SASL: policy.Optional}},
	}}), nil)
	if err != nil {
		return nil, err
	}
	srv := &federation.Server{
		Verify:   certs.VerifyOptions{Roots: roots},
		Resolver: resolver,
		Policy:   pol,
		Limits:   s2s.Limits{DialTimeout: timeout},
	}
	if from != "" {
		if _, err := certs.NormalizeDomain(from); err != nil {
			return nil, fmt.Errorf("-from: %w", err)
		}
		srv.Domains = []string{from}
	}
	return srv, nil
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
