package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/xmppfed/xmppfed/policy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are what run takes from its flags, plus a hook for tests.
type options struct {
	// timeout bounds each step.
	timeout time.Duration
	// verbose prints the XML of every stream.
	verbose bool
	// configure, when set, may change the policy a domain starts with
	// (tests break a step with it).
	configure func(domain string, c *policy.Config)
}

// run is main without the process: it parses args, runs the demo and
// returns the exit status (0: every step happened; 1: a step failed; 2:
// bad flags).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts options
	fs.BoolVar(&opts.verbose, "v", false, "also print the XML of every stream")
	fs.DurationVar(&opts.timeout, "timeout", 5*time.Second, "how long each step may take")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: quickstart [-v] [-timeout 5s]\n\n"+
			"Runs two federating XMPP domains on loopback and shows a conversation between them.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "quickstart: no arguments expected, got %q\n", fs.Args())
		return 2
	}
	if opts.timeout <= 0 {
		fmt.Fprintf(stderr, "quickstart: -timeout must be positive, got %v\n", opts.timeout)
		return 2
	}
	return demo(ctx, opts, &console{w: stdout})
}

// console serializes what goes to standard output: the step lines and,
// with -v, the XML the servers' streams write concurrently.
type console struct {
	mu sync.Mutex
	w  io.Writer
}

// printf writes one line.
func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, format+"\n", args...)
}

// xml returns a writer for a server's DebugWriter: each chunk (one
// "IN ..." or "OUT ..." line from package s2s) is indented and labelled
// with the domain.
func (c *console) xml(domain string) io.Writer {
	return prefixWriter{c: c, prefix: "      " + domain + " "}
}

type prefixWriter struct {
	c      *console
	prefix string
}

// Write writes b to the shared output, prefixed, under the output lock.
func (p prefixWriter) Write(b []byte) (int, error) {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	if _, err := io.WriteString(p.c.w, p.prefix); err != nil {
		return 0, err
	}
	return p.c.w.Write(b)
}
