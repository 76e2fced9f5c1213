package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCheck(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestEmbeddedExample: the example file is valid, shows every partner with
// the methods of the matrix, and warns only about the adaptive partner, as
// its comment says.
func TestEmbeddedExample(t *testing.T) {
	for _, args := range [][]string{nil, {"-strict"}} {
		code, out, errOut := runCheck(t, args...)
		if code != 0 || errOut != "" {
			t.Fatalf("%v: exit %d, stderr %s", args, code, errOut)
		}
		for _, want := range []string{
			"partners.toml: 4 partners, 3 access policies",
			"federation: partners only",
			"blocked: spam.example, *.bad.example",
			"contoso.com ",
			"tls=required sasl=required dialback=false",
			"fabrikam.com (+chat.fabrikam.com, fabrikam.net)",
			"proxy=xmpp-edge.fabrikam.com:5269",
			"SASL over TLS, TLS dialback\n",
			"SASL over TLS, TLS dialback, TCP dialback\n",
			"tls=not-supported sasl=not-supported dialback=true keepalive=false",
			"TCP dialback\n",
			"global        no XMPP access",
			"site:Redmond  XMPP access",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output lacks %q:\n%s", args, want, out)
			}
		}
		_, warnings, _ := strings.Cut(out, "\nwarnings:\n")
		lines := strings.Split(strings.TrimSpace(warnings), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "partners.toml:70: W-SASL-TLS partner[adatum.com].sasl: ") {
			t.Errorf("%v: warnings %q, want only W-SASL-TLS for adatum.com on line 70", args, lines)
		}
	}
}

// TestBrokenFile: errors go to stderr with their lines, exit status 1.
func TestBrokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "broken.toml")
	src := `[gateway]
conection_limit = 10

[[partner]]
domain = "gmail.com"
tls = "not-supported"
sasl = "optional"
dialback = false
`
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCheck(t, path)
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	want := path + `:2: gateway.conection_limit: unknown key (did you mean "connection_limit"?)` + "\n" +
		path + `:6: partner[gmail.com].tls, sasl, dialback = "not-supported, optional, false": SASL needs TLS, which is not-supported, and dialback is off: no authentication method is left` + "\n"
	if errOut != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", errOut, want)
	}

	// Valid, but refused in strict mode.
	if err := os.WriteFile(path, []byte("[[partner]]\ndomain = \"a.example\"\ntls = \"not-supported\"\nsasl = \"optional\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCheck(t, path); code != 0 || !strings.Contains(out, path+":4: W-SASL-TLS") {
		t.Errorf("lenient: exit %d\n%s", code, out)
	}
	if code, _, errOut := runCheck(t, "-strict", path); code != 1 || !strings.Contains(errOut, "(strict mode)") {
		t.Errorf("strict: exit %d, stderr %s", code, errOut)
	}
}

func TestUsage(t *testing.T) {
	if code, _, errOut := runCheck(t, "-bogus"); code != 2 || !strings.Contains(errOut, "usage: policycheck") {
		t.Errorf("bad flag: exit %d, %s", code, errOut)
	}
	if code, _, _ := runCheck(t, "a", "b"); code != 2 {
		t.Errorf("two files: exit %d", code)
	}
	code, _, errOut := runCheck(t, filepath.Join(t.TempDir(), "missing.toml"))
	if code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: exit %d, %s", code, errOut)
	}
}
