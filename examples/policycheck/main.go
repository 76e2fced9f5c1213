package main

import (
	"embed"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/xmppfed/xmppfed/policy"
)

// example is the commented example policy file checked when no FILE is
// given.
//
//go:embed partners.toml
var example embed.FS

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it parses args, checks the file and
// returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("policycheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	strict := fs.Bool("strict", false, "also refuse TLS not-supported with SASL required or optional, as the Lync Control Panel did")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: policycheck [-strict] [FILE]\n\nWith no FILE, policycheck checks its embedded example, partners.toml.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "policycheck: one FILE at most, got %d arguments\n", fs.NArg())
		return 2
	}

	var (
		name = "partners.toml"
		c    *policy.Config
		ws   []policy.Warning
		err  error
	)
	if fs.NArg() == 1 {
		name = fs.Arg(0)
		c, ws, err = policy.ParseFile(name, *strict)
	} else {
		c, ws, err = policy.ParseFS(example, name, *strict)
	}
	if err != nil {
		// A *FileError prints one "file:line: field = value: reason"
		// line per problem.
		fmt.Fprintln(stderr, err)
		return 1
	}
	report(stdout, name, c, ws)
	return 0
}

// report prints the partners, the access policies and the warnings.
func report(w io.Writer, name string, c *policy.Config, ws []policy.Warning) {
	g := c.Gateway
	fmt.Fprintf(w, "%s: %d partners, %d access policies\n", name, len(c.Partners), len(c.Policies))
	switch {
	case g.DisableFederation:
		fmt.Fprintln(w, "federation: disabled (disable_federation = true): no XMPP traffic at all")
	case g.OpenFederation:
		fmt.Fprintf(w, "federation: open: non-partners admitted with %s\n", describe(g.DefaultPartner))
	default:
		fmt.Fprintln(w, "federation: partners only")
	}
	if len(g.Blocked) > 0 {
		fmt.Fprintf(w, "blocked: %s\n", strings.Join(g.Blocked, ", "))
	}

	fmt.Fprintln(w, "\npartners:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  DOMAIN\tTYPE\tSETTINGS\tEXPECTED METHODS")
	for _, p := range c.Partners {
		domains := p.Domain
		if len(p.AdditionalDomains) > 0 {
			domains += " (+" + strings.Join(p.AdditionalDomains, ", ") + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", domains, p.Type, settings(p), p.ExpectedMethods())
	}
	tw.Flush()

	if len(c.Policies) > 0 {
		fmt.Fprintln(w, "\naccess policies:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, ap := range c.Policies {
			access := "no XMPP access"
			if ap.EnableXMPPAccess {
				access = "XMPP access"
			}
			fmt.Fprintf(tw, "  %s\t%s\n", ap.Name, access)
		}
		tw.Flush()
	}

	if len(ws) > 0 {
		fmt.Fprintln(w, "\nwarnings:")
		for _, wn := range ws {
			// The warning's Text starts with "line N: " when it came
			// from a file: print it as "name:N: ".
			text, line := wn.Text, ""
			if rest, ok := strings.CutPrefix(text, "line "); ok {
				if n, after, ok := strings.Cut(rest, ": "); ok {
					line, text = ":"+n, after
				}
			}
			fmt.Fprintf(w, "  %s%s: %s %s: %s\n", name, line, wn.Code, wn.Field, text)
		}
	}
}

// settings returns a partner's TLS, SASL and dialback settings, and the
// other non-default ones.
func settings(p policy.Partner) string {
	s := fmt.Sprintf("tls=%s sasl=%s dialback=%t", p.TLS, p.SASL, p.Dialback())
	if p.DisableKeepAlive {
		s += " keepalive=false"
	}
	if p.ProxyFQDN != "" {
		s += " proxy=" + p.ProxyFQDN
	}
	return s
}

// describe summarizes the default partner's settings.
func describe(p policy.Partner) string {
	return fmt.Sprintf("%s, %s (%s)", p.Type, settings(p), p.ExpectedMethods())
}
