package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/xmppfed/xmppfed/policy"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// wantLines are the lines the demo must print, in this order: each is the
// start of a line (some end with details that depend on the run).
var wantLines = []string{
	"✓ alice asks to see bob's presence",
	"✓ fabrikam.test approves it for bob (contoso.test is a federated partner): alice sees bob (roster: To)",
	"✓ bob asks to see alice's presence",
	"✓ contoso.test approves it for alice (fabrikam.test is a federated partner): bob sees alice (roster: Both)",
	"✓ bob is available (no <show/>): alice sees bob: available",
	"✓ bob is away 'lunch' (<show>xa</show>): alice sees bob: away (note: 'lunch')",
	"✓ bob is do-not-disturb (<show>dnd</show>): alice sees bob: do-not-disturb",
	"✓ bob is offline (type='unavailable'): alice sees bob: offline",
	"✓ alice is available (no <show/>): bob sees alice: available (note: 'at my desk')",
	"✓ bob -> alice: 'hi' (composing first)",
	"✓ receipt for bob's 'hi' back at bob",
	"✓ alice -> bob: 'hello bob, lunch tomorrow?' (composing first)",
	"✓ receipt for alice's 'hello bob, lunch tomorrow?' back at alice",
	"✓ message to nobody@fabrikam.test bounced: service-unavailable",
	"✓ alice -> eve@stranger.test refused by Send: stranger.test is not a federation partner (service-unavailable, rule not_partner)",
	"✓ stranger.test refused: not a federation partner (contoso.test closed its stream with policy-violation; eve's message bounced at stranger.test: ",
	"✓ all three servers shut down",
	"PASS: all 16 steps happened",
}

// checkLines fails t unless every want line starts a line of out, in
// order.
func checkLines(t *testing.T, out string, want []string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	i := 0
	for _, w := range want {
		for i < len(lines) && !strings.HasPrefix(lines[i], w) {
			i++
		}
		if i == len(lines) {
			t.Fatalf("the output lacks, in order, the line %q; it is:\n%s", w, out)
		}
		i++
	}
}

func TestQuickstart(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(t.Context(), nil, &out, &errOut); code != 0 {
		t.Fatalf("exit status %d, want 0; output:\n%s\nstandard error:\n%s", code, &out, &errOut)
	}
	checkLines(t, out.String(), wantLines)
	if strings.Contains(out.String(), "✗") {
		t.Errorf("a step failed in a run that exited 0:\n%s", &out)
	}
	if strings.Contains(out.String(), "<message") {
		t.Errorf("XML printed without -v:\n%s", &out)
	}
}

// TestVerbose checks that -v prints the streams' XML, labelled with the
// domain, besides the same steps.
func TestVerbose(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"-v", "-timeout", "10s"}, &out, &errOut); code != 0 {
		t.Fatalf("exit status %d, want 0; output:\n%s\nstandard error:\n%s", code, &out, &errOut)
	}
	checkLines(t, out.String(), wantLines)
	for _, want := range []string{"contoso.test OUT ", "fabrikam.test IN ", "<message", "<presence", "urn:xmpp:receipts", "http://jabber.org/protocol/chatstates"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-v output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", &out)
	}
}

// TestFailingStep checks that a step that does not happen makes the
// demo say which and exit 1: fabrikam.test's global policy gives nobody
// XMPP access, so bob never gets alice's request (she gets
// service-unavailable instead).
func TestFailingStep(t *testing.T) {
	var out bytes.Buffer
	opts := options{
		timeout: 2 * time.Second,
		configure: func(domain string, c *policy.Config) {
			if domain == "fabrikam.test" {
				c.Policies[0].EnableXMPPAccess = false
			}
		},
	}
	code := demo(t.Context(), opts, &console{w: &out})
	if code != 1 {
		t.Fatalf("exit status %d, want 1; output:\n%s", code, &out)
	}
	checkLines(t, out.String(), []string{
		"✗ alice@contoso.test asks to see bob@fabrikam.test's presence: context deadline exceeded",
		"FAILED: 0 of 16 steps passed",
	})
	if strings.Contains(out.String(), "✓") {
		t.Errorf("a step passed:\n%s", &out)
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"-timeout", "0s"}, 2, "-timeout must be positive"},
		{[]string{"extra"}, 2, "no arguments expected"},
		{[]string{"-nosuchflag"}, 2, "flag provided but not defined"},
		{[]string{"-h"}, 0, "usage: quickstart"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), tc.args, &out, &errOut); code != tc.code {
			t.Errorf("%q: exit status %d, want %d", tc.args, code, tc.code)
		}
		if !strings.Contains(errOut.String(), tc.err) {
			t.Errorf("%q: standard error %q lacks %q", tc.args, &errOut, tc.err)
		}
		if out.Len() != 0 {
			t.Errorf("%q: printed %q on standard output", tc.args, &out)
		}
	}
}
