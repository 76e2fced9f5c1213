//go:build interop

package interop

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Peer is a running real XMPP server.
type Peer struct {
	Kind   string // "prosody" or "ejabberd"
	Domain string // its XMPP domain, e.g. "prosody.test"
	IP     string // the loopback address it listens on
	Mode   Mode   // how it authenticates our server
	Dir    string // its temporary directory
	LogF   string // its main log file

	CAFile string // both CAs' certificates (PEM), for c2s clients

	logFrom  int64 // where CheckAuthLog starts reading LogF
	proc     *process
	owner    testing.TB // the test whose end stops the server
	register func(ctx context.Context, user, pass string) error
	// configure writes the server's configuration for mode; launch
	// starts it and waits until it serves (failures go to t).
	configure func(t testing.TB, m Mode)
	launch    func(t testing.TB)
	// shutdown, if set, asks the server to stop by its own means first
	// (bounded), so that it saves its data.
	shutdown func()
	// evidence returns regular expressions that the peer's log must
	// (want) and must not (reject) match once it has authenticated
	// streams with the domain ours in both directions in mode m.
	evidence func(m Mode, ours string) (want, reject []string)
}

// CheckAuthLog confirms from the peer's own log that it authenticated its
// streams with ours in both directions by the method of p.Mode and not by
// the other one. It polls the log (bounded, 10 s) since servers write their
// logs asynchronously.
func (p *Peer) CheckAuthLog(ours string) error {
	want, reject := p.evidence(p.Mode, ours)
	var missing []string
	for range 100 {
		var wrong string
		missing, wrong = matchEvidence(p.logSince(4<<20), want, reject)
		if wrong != "" {
			return fmt.Errorf("interop: %s log shows the wrong auth method for %s (mode %s): %q", p.Kind, ours, p.Mode, wrong)
		}
		if len(missing) == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("interop: %s log lacks evidence of %s auth with %s: %q", p.Kind, p.Mode, ours, missing)
}

// matchEvidence returns the want patterns that log does not match, and the
// first text that a reject pattern matches ("" if none).
func matchEvidence(log string, want, reject []string) (missing []string, wrong string) {
	for _, w := range want {
		if !regexp.MustCompile(w).MatchString(log) {
			missing = append(missing, w)
		}
	}
	for _, r := range reject {
		if m := regexp.MustCompile(r).FindString(log); m != "" {
			return missing, m
		}
	}
	return missing, ""
}

// Stop stops the server, bounded: gracefully by its own control tool
// where it has one that is needed to keep its data (ejabberd's Mnesia),
// then its process group (SIGTERM, then SIGKILL). Its directory,
// configuration and data stay for Start.
func (p *Peer) Stop() {
	if p.shutdown != nil {
		p.shutdown()
	}
	p.proc.stop()
}

// Start starts the stopped server again with the configuration and data
// it had, and waits until it serves. It is stopped when the test that
// started it first ends.
func (p *Peer) Start(t testing.TB) {
	t.Helper()
	p.launch(t)
}

// Restart stops the server and starts it again in mode, keeping its data
// (accounts, rosters) and certificates: with another mode its
// configuration is rewritten first.
//
// The log evidence CheckAuthLog considers starts at the restart.
func (p *Peer) Restart(t testing.TB, mode Mode) {
	t.Helper()
	p.Stop()
	if st, err := os.Stat(p.LogF); err == nil {
		p.logFrom = st.Size()
	}
	if mode != p.Mode {
		p.configure(t, mode)
		p.Mode = mode
	}
	p.launch(t)
}

// logSince returns at most the last n bytes of the log written since
// logFrom.
func (p *Peer) logSince(n int64) string {
	f, err := os.Open(p.LogF)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	off := max(st.Size()-n, p.logFrom, 0)
	b := make([]byte, max(st.Size()-off, 0))
	k, _ := f.ReadAt(b, off)
	return string(b[:k])
}

// C2SAddr is the peer's client-to-server address.
func (p *Peer) C2SAddr() string { return p.IP + ":5222" }

// Register creates the accounts user@Domain with password pass, in parallel.
func (p *Peer) Register(t testing.TB, pass string, users ...string) {
	t.Helper()
	fns := make([]func() error, len(users))
	for i, u := range users {
		fns[i] = func() error { return p.register(context.Background(), u, pass) }
	}
	if err := parallel(fns...); err != nil {
		t.Fatalf("interop: register on %s: %v", p.Domain, err)
	}
}

// Log returns the end of the peer's log, for failure messages.
func (p *Peer) Log() string { return tail(p.LogF, 16<<10) }

// luaString quotes s as a Lua string literal: backslash and double quote
// are escaped, and every control byte becomes a three-digit decimal escape
// (Lua 5.4 manual §3.1), so no path can end the literal or the line.
func luaString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := range len(s) {
		c := s[i]
		switch {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// StartProsody starts Prosody for prosody.test on 127.0.0.2 (c2s 5222, s2s
// 5269) in mode and stops it when t ends. The DNS server must be running.
func StartProsody(t testing.TB, pki *PKI, mode Mode) *Peer {
	t.Helper()
	return startProsody(t, pki, mode, 0)
}

// StartProsodyDirectTLS is StartProsody with an XEP-0368 direct TLS s2s
// listener on 127.0.0.2:port as well; Prosody also tries _xmpps-server SRV
// records first on its outbound streams.
func StartProsodyDirectTLS(t testing.TB, pki *PKI, mode Mode, port uint16) *Peer {
	t.Helper()
	return startProsody(t, pki, mode, port)
}

func startProsody(t testing.TB, pki *PKI, mode Mode, directTLSPort uint16) *Peer {
	t.Helper()
	requireRoot(t, "prosody")
	acct, err := lookupAccount("prosody")
	if err != nil {
		t.Fatal(err)
	}
	const domain, ip = "prosody.test", "127.0.0.2"
	dir := workDir(t, "prosody", acct)
	mkdirs(t, acct, dir, "data")
	certFile, keyFile := writeCert(t, acct, dir, domain, pki.Leaf(t, domain))
	caFile := writeFile(t, acct, dir, "ca.pem", string(pki.CA.RootPEM()))
	clientCA := writeFile(t, acct, dir, "clients-ca.pem", string(pki.CA.RootPEM())+string(pki.Other.RootPEM()))
	untrustedCert, untrustedKey := writeCert(t, acct, dir, domain+"-untrusted", pki.OtherLeaf(t, domain))
	logFile := filepath.Join(dir, "prosody.log")

	p := &Peer{Kind: "prosody", Domain: domain, IP: ip, Mode: mode, Dir: dir, LogF: logFile, CAFile: clientCA, owner: t}
	cfgFile := filepath.Join(dir, "prosody.cfg.lua")
	directPorts := ""
	if directTLSPort != 0 {
		directPorts = fmt.Sprint(directTLSPort)
	}
	p.configure = func(t testing.TB, mode Mode) {
		// s2s_secure_auth requires a valid certificate of every peer and
		// so SASL EXTERNAL or the XEP-0344 shortcut; without it and
		// without mod_s2s_auth_certs, Prosody ignores certificates and
		// uses dialback (XEP-0220) over the required TLS (RFC 7590).
		secure, disabled := "true", ""
		if mode != External {
			secure, disabled = "false", `"s2s_auth_certs"`
		}
		certFile, keyFile := certFile, keyFile
		if mode == Untrusted {
			certFile, keyFile = untrustedCert, untrustedKey
		}
		cfg := fmt.Sprintf(`-- generated by xmppfed internal/interop
pidfile = %[1]s
data_path = %[2]s
log = { debug = %[3]s }
interfaces = { %[4]q }
local_interfaces = { %[4]q }
c2s_ports = { 5222 }
s2s_ports = { 5269 }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { %[11]s }
http_ports = { }
https_ports = { }
network_settings = { nagle = false }
modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping" }
modules_disabled = { %[5]s }
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = %[6]s
ssl = { certificate = %[7]s; key = %[8]s; cafile = %[9]s }
unbound = { resolvconf = false; hoststxt = false; forward = "127.0.0.5@53"; options = { ["local-zone:"] = "test. transparent" } }
VirtualHost %[10]q
	ssl = { certificate = %[7]s; key = %[8]s; cafile = %[9]s }
`, luaString(filepath.Join(dir, "prosody.pid")), luaString(filepath.Join(dir, "data")),
			luaString(logFile), ip, disabled, secure,
			luaString(certFile), luaString(keyFile), luaString(caFile), domain, directPorts)
		writeFile(t, acct, dir, "prosody.cfg.lua", cfg)
	}
	p.configure(t, mode)

	p.evidence = prosodyEvidence
	p.register = func(ctx context.Context, user, pass string) error {
		_, err := run(ctx, 30*time.Second, nil, "prosodyctl", "--config", cfgFile, "register", user, domain, pass)
		return err
	}
	ports := []string{"5222", "5269"}
	if directTLSPort != 0 {
		ports = append(ports, fmt.Sprint(directTLSPort))
	}
	p.launch = func(t testing.TB) {
		t.Helper()
		// Only prosodyctl drops root by itself; prosody is started as its user.
		p.proc = startProcessFor(t, p.owner, "prosody", filepath.Join(dir, "stdout.log"), []string{"HOME=" + dir},
			sandbox(acct, "", "prosody", "--config", cfgFile, "-F")...)
		for _, port := range ports {
			if err := waitPort(p.proc, ip+":"+port, 30*time.Second); err != nil {
				t.Fatalf("%v\nstdout: %s\nlog: %s", err, tail(filepath.Join(dir, "stdout.log"), 4096), p.Log())
			}
		}
	}
	p.launch(t)
	return p
}

// prosodyEvidence is Peer.evidence for Prosody 0.12's debug log: SASL
// EXTERNAL outcomes both ways, or the dialback verdicts both ways (the
// attribute order of logged elements varies between runs).
func prosodyEvidence(m Mode, ours string) (want, reject []string) {
	q := regexp.QuoteMeta(ours)
	external := []string{
		"SASL EXTERNAL with " + q + " succeeded",     // outbound
		"Accepting SASL EXTERNAL identity from " + q, // inbound
	}
	dialback := []string{
		// outbound: the peer's db:result answer from us is valid
		`Received\[s2sout_unauthed\]: <result [^>]*from='` + q + `'[^>]*type='valid'|Received\[s2sout_unauthed\]: <result [^>]*type='valid'[^>]*from='` + q + `'`,
		// inbound: the peer tells us our db:result is valid
		`Sending\[s2sin\]: <db:result [^>]*to='` + q + `'[^>]*type='valid'|Sending\[s2sin\]: <db:result [^>]*type='valid'[^>]*to='` + q + `'`,
	}
	if m != External {
		return dialback, external
	}
	return external, dialback
}
