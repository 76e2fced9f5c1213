package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/dnsdisco"
	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/policy"
)

// defaultPolicy is the policy file used when -partners is not given.
//
//go:embed partners.toml
var defaultPolicy embed.FS

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is what the flags say.
type config struct {
	domain      string
	listen      string
	listenUsers string
	users       []string
	certFile    string
	keyFile     string
	partners    string
	caFile      string
	caOut       string
	dns         string
	debug       bool
	xml         bool
}

// run is main without the process: it parses args and serves until ctx
// ends. It returns the exit status: 0 after a clean shutdown, 1 when the
// server could not start or stop cleanly, 2 for bad flags.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, code := parseFlags(args, stderr)
	if code >= 0 {
		return code
	}
	if err := serve(ctx, cfg, stdout, stderr, nil); err != nil {
		fmt.Fprintf(stderr, "chatserver: %v\n", err)
		return 1
	}
	return 0
}

// parseFlags returns the configuration, or an exit status (-1: none, go
// on).
func parseFlags(args []string, stderr io.Writer) (config, int) {
	var cfg config
	fs := flag.NewFlagSet("chatserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.domain, "domain", "chat.localhost", "the XMPP `domain` served")
	fs.StringVar(&cfg.listen, "listen", ":5269", "`address` of the server-to-server listener (STARTTLS, RFC 6120)")
	fs.StringVar(&cfg.listenUsers, "listen-users", "127.0.0.1:7000", "`address` of the line interface for local users (connect with nc)")
	users := fs.String("users", "alice,bob", "comma-separated local `names` of the users")
	fs.StringVar(&cfg.certFile, "cert", "", "PEM certificate `file` for the domain (leaf first); reloaded when it changes. Without -cert and -key, a throw-away test CA issues one")
	fs.StringVar(&cfg.keyFile, "key", "", "PEM private key `file` for -cert")
	fs.StringVar(&cfg.partners, "partners", "", "policy `file` (TOML: partners, gateway, access policies), re-read when it changes; default: the embedded partners.toml")
	fs.StringVar(&cfg.caFile, "ca", "", "PEM `file` of extra CA certificates trusted for peers (besides the system roots)")
	fs.StringVar(&cfg.caOut, "ca-out", "", "without -cert: write the throw-away test CA's root certificate to this `file`, for peers to trust")
	fs.StringVar(&cfg.dns, "dns", "", "DNS server `host:port` to look up peers with, instead of /etc/resolv.conf")
	fs.BoolVar(&cfg.debug, "debug", false, "log at debug level (message bodies are still never logged)")
	fs.BoolVar(&cfg.xml, "xml", false, "print the XML of every stream to standard error (contains message bodies: never in production)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: chatserver [flags]\n\n"+
			"A tiny chat server whose users federate with XMPP servers. Users connect to\n"+
			"-listen-users with nc and type 'help'. See examples/chatserver/README.md.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, 0
		}
		return cfg, 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "chatserver: no arguments expected, got %q\n", fs.Args())
		return cfg, 2
	}
	for _, u := range strings.Split(*users, ",") {
		if u = strings.TrimSpace(u); u != "" && !slices.Contains(cfg.users, u) {
			cfg.users = append(cfg.users, u)
		}
	}
	if len(cfg.users) == 0 {
		fmt.Fprintf(stderr, "chatserver: -users names no user\n")
		return cfg, 2
	}
	if (cfg.certFile == "") != (cfg.keyFile == "") {
		fmt.Fprintf(stderr, "chatserver: -cert and -key go together\n")
		return cfg, 2
	}
	if cfg.caOut != "" && cfg.certFile != "" {
		fmt.Fprintf(stderr, "chatserver: -ca-out is for the generated certificate; with -cert, give peers your CA yourself\n")
		return cfg, 2
	}
	return cfg, -1
}

// ready, when not nil, is told where serve listens once it does (tests
// use it).
type ready func(fed, users net.Addr)

// serve runs the chat server until ctx ends, then shuts it down.
func serve(ctx context.Context, cfg config, stdout, stderr io.Writer, onReady ready) error {
	level := slog.LevelInfo
	if cfg.debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	c, err := newChat(cfg.domain, cfg.users, logger)
	if err != nil {
		return err
	}

	// The policy: a file the operator edits (re-read when it changes),
	// or the embedded example. Its Directory is the chat server, which
	// knows its users (package federation expects the Backend there).
	var store policy.Store
	if cfg.partners != "" {
		// A missing file would be an empty policy (nobody federates),
		// and a typo in the path would go unnoticed: refuse it.
		if _, err := os.Stat(cfg.partners); err != nil {
			return fmt.Errorf("-partners: %w", err)
		}
		store = &policy.FileStore{Path: cfg.partners}
	} else {
		pc, warnings, err := policy.ParseFS(defaultPolicy, "partners.toml", false)
		if err != nil {
			return fmt.Errorf("embedded partners.toml: %w", err)
		}
		for _, w := range warnings {
			logger.Info("embedded policy: " + w.String())
		}
		store = policy.NewMemStore(pc)
	}
	pol, err := policy.New(ctx, store, &policy.Options{Directory: c, Logger: logger})
	if err != nil {
		return err
	}

	tlsConfig, err := serverTLS(cfg, logger)
	if err != nil {
		return err
	}
	roots, err := peerRoots(cfg.caFile)
	if err != nil {
		return err
	}
	resolver := &dnsdisco.Resolver{}
	if cfg.dns != "" {
		resolver.Servers = []string{cfg.dns}
	}

	fed := &federation.Server{
		Domains:   []string{c.domain},
		TLSConfig: tlsConfig,
		Verify:    certs.VerifyOptions{Roots: roots},
		Resolver:  resolver,
		Policy:    pol,
		Backend:   c,
		Version:   &federation.Version{Name: "xmppfed chatserver example", Version: "0"},
		Logger:    logger,
	}
	if cfg.xml {
		fed.DebugWriter = stderr
	}
	c.fed = fed

	fedLn, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	userLn, err := net.Listen("tcp", cfg.listenUsers)
	if err != nil {
		fedLn.Close()
		return err
	}

	// stop ends the goroutines tied to ctx (Watch) when serve returns
	// for another reason.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	served := make(chan error, 1)
	wg.Go(func() { served <- fed.Serve(fedLn) })
	wg.Go(func() { c.serveUsers(userLn) })
	if cfg.partners != "" {
		// The operator edits the file; take changes in without a
		// restart (REFERENCE §5.1 #16).
		wg.Go(func() { _ = pol.Watch(ctx, 2*time.Second) })
	}

	names := make([]string, len(c.order))
	for i, a := range c.order {
		names[i] = a.jid.String()
	}
	fmt.Fprintf(stdout, "chatserver for %s: federation on %s, users on %s (nc %s, then: login %s)\nusers: %s\npartners: %s\n",
		c.domain, fedLn.Addr(), userLn.Addr(), strings.Replace(userLn.Addr().String(), ":", " ", 1),
		c.order[0].jid.Localpart(), strings.Join(names, ", "), partnerList(pol))
	if onReady != nil {
		onReady(fedLn.Addr(), userLn.Addr())
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
		// Serve ended by itself (the listener failed): stop the rest.
	}
	stop()
	userLn.Close()
	c.closeSessions()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	shutErr := fed.Shutdown(sctx)
	wg.Wait()
	if serveErr == nil {
		serveErr = <-served
	}
	if errors.Is(serveErr, federation.ErrServerClosed) {
		serveErr = nil
	}
	return errors.Join(serveErr, shutErr)
}

// serverTLS returns the TLS configuration of our domain: the -cert/-key
// pair through a certs.Reloader (a renewed certificate is used without a
// restart), or a certificate from a throw-away test CA.
func serverTLS(cfg config, logger *slog.Logger) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.certFile != "" {
		r := &certs.Reloader{Logger: logger}
		if err := r.Add(cfg.certFile, cfg.keyFile); err != nil {
			return nil, err
		}
		if !slices.Contains(r.Domains(), cfg.domain) {
			// REFERENCE §5.4 #46: a certificate that does not name the
			// domain makes every TLS-based authentication fail.
			logger.Warn("the certificate does not name the domain", "domain", cfg.domain, "names", r.Domains())
		}
		tc.GetCertificate = r.GetCertificate
		return tc, nil
	}
	ca, err := certs.NewTestCA()
	if err != nil {
		return nil, err
	}
	cert, err := ca.IssueDomain(cfg.domain)
	if err != nil {
		return nil, err
	}
	tc.Certificates = []tls.Certificate{cert}
	if cfg.caOut != "" {
		if err := os.WriteFile(cfg.caOut, ca.RootPEM(), 0o644); err != nil {
			return nil, err
		}
	}
	logger.Warn("no -cert: using a certificate from a throw-away test CA; peers that do not trust it (-ca-out) can only use dialback", "domain", cfg.domain)
	return tc, nil
}

// peerRoots returns the system roots plus the certificates of file.
func peerRoots(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil // the system roots
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("-ca: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-ca: %s holds no PEM certificate", file)
	}
	return pool, nil
}

// partnerList names the policy's partners and their types.
func partnerList(pol *policy.Policy) string {
	var s []string
	for _, p := range pol.Partners("") {
		s = append(s, fmt.Sprintf("%s (%s)", p.Domain, p.Type))
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}
