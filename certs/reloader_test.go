package certs

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manually advanced clock for Reloader.now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func issueWrite(t *testing.T, ca *TestCA, dir, name string, domains ...string) (tls.Certificate, string, string) {
	t.Helper()
	c, err := ca.IssueDomain(domains...)
	if err != nil {
		t.Fatal(err)
	}
	cf, kf, err := WritePEM(dir, name, c)
	if err != nil {
		t.Fatal(err)
	}
	return c, cf, kf
}

func served(t *testing.T, r *Reloader, sni string) *tls.Certificate {
	t.Helper()
	c, err := r.GetCertificate(&tls.ClientHelloInfo{ServerName: sni})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sameCert(a *tls.Certificate, b tls.Certificate) bool {
	return a != nil && bytes.Equal(a.Certificate[0], b.Certificate[0])
}

func TestReloaderRenewWithoutRestart(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	v1, cf, kf := issueWrite(t, ca, dir, "example", "example.org")
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := &Reloader{CheckInterval: time.Hour, now: clk.now}
	if err := r.Add(cf, kf); err != nil {
		t.Fatal(err)
	}
	if !sameCert(served(t, r, "example.org"), v1) {
		t.Fatal("v1 not served")
	}
	v2, _, _ := issueWrite(t, ca, dir, "example", "example.org") // renewal in place
	clk.advance(59 * time.Minute)
	if !sameCert(served(t, r, "example.org"), v1) {
		t.Fatal("files re-read before CheckInterval elapsed")
	}
	clk.advance(time.Minute)
	if !sameCert(served(t, r, "example.org"), v2) {
		t.Fatal("renewed certificate not served after CheckInterval")
	}
	// Key file mode from WritePEM.
	if fi, err := os.Stat(kf); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

func TestReloaderNegativeIntervalOnlyReload(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	v1, cf, kf := issueWrite(t, ca, dir, "example", "example.org")
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := &Reloader{CheckInterval: -1, now: clk.now}
	if err := r.Add(cf, kf); err != nil {
		t.Fatal(err)
	}
	v2, _, _ := issueWrite(t, ca, dir, "example", "example.org")
	clk.advance(1000 * time.Hour)
	if !sameCert(served(t, r, ""), v1) {
		t.Fatal("negative CheckInterval reloaded from GetCertificate")
	}
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if !sameCert(served(t, r, ""), v2) {
		t.Fatal("Reload did not pick up the renewal")
	}
	// Zero means one minute.
	if (&Reloader{}).interval() != time.Minute {
		t.Error("zero CheckInterval is not one minute")
	}
}

func TestReloaderBrokenRenewalKeepsOld(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	v1, cf, kf := issueWrite(t, ca, dir, "example", "example.org")
	var logBuf bytes.Buffer
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := &Reloader{Logger: slog.New(slog.NewTextHandler(&logBuf, nil)), now: clk.now}
	if err := r.Add(cf, kf); err != nil {
		t.Fatal(err)
	}

	// Garbage certificate file.
	if err := os.WriteFile(cf, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := r.Reload()
	if err == nil || !strings.Contains(err.Error(), cf) {
		t.Fatalf("Reload with garbage cert: %v, want error naming %s", err, cf)
	}
	if !sameCert(served(t, r, "example.org"), v1) {
		t.Fatal("old certificate not kept after a broken renewal")
	}
	log := logBuf.String()
	if !strings.Contains(log, "level=WARN") || !strings.Contains(log, cf) || !strings.Contains(log, "failed to find") {
		t.Errorf("log = %q, want a WARN naming %s and the reason", log, cf)
	}
	// Still broken on the next explicit Reload: reported again, not logged twice.
	logBuf.Reset()
	if err := r.Reload(); err == nil {
		t.Error("second Reload of the same broken file returned nil")
	}
	if logBuf.Len() != 0 {
		t.Errorf("unchanged broken file logged again: %q", logBuf.String())
	}

	// A new certificate with the OLD key: mismatched pair.
	v3, err := ca.IssueDomain("example.org")
	if err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	cf3, _, err := WritePEM(other, "v3", v3)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, _ := os.ReadFile(cf3)
	if err := os.WriteFile(cf, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	logBuf.Reset()
	clk.advance(time.Minute)
	if !sameCert(served(t, r, "example.org"), v1) { // the periodic check inside GetCertificate
		t.Fatal("mismatched pair replaced the old certificate")
	}
	if !strings.Contains(logBuf.String(), "private key does not match") {
		t.Errorf("log = %q, want the key mismatch reason", logBuf.String())
	}
	if err := r.Reload(); err == nil || !strings.Contains(err.Error(), "private key does not match") || !strings.Contains(err.Error(), kf) {
		t.Errorf("Reload with mismatched key: %v", err)
	}

	// Fixed: the matching key arrives too.
	_, _, err = WritePEM(dir, "example", v3)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload after fix: %v", err)
	}
	if !sameCert(served(t, r, "example.org"), v3) {
		t.Fatal("fixed renewal not served")
	}
}

func TestReloaderAddErrors(t *testing.T) {
	dir := t.TempDir()
	r := &Reloader{}
	if _, err := r.GetCertificate(&tls.ClientHelloInfo{}); err == nil {
		t.Error("empty Reloader served a certificate")
	}
	missing := filepath.Join(dir, "missing.crt")
	if err := r.Add(missing, missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Add(missing) = %v, want error naming the file", err)
	}
	garbage := filepath.Join(dir, "garbage.crt")
	if err := os.WriteFile(garbage, []byte("-----BEGIN NOTHING-----"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(garbage, garbage); err == nil || !strings.Contains(err.Error(), garbage) {
		t.Errorf("Add(garbage) = %v, want error naming the file", err)
	}
	if err := r.Add("", "x"); err == nil {
		t.Error("Add with empty name succeeded")
	}
	if len(r.Domains()) != 0 {
		t.Error("failed Adds left pairs behind")
	}
	if _, _, err := WritePEM(dir, "../x", tls.Certificate{}); err == nil {
		t.Error("WritePEM accepted a path in name")
	}
}

func TestReloaderSNI(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	a, cfA, kfA := issueWrite(t, ca, dir, "a", "a.example")
	b, cfB, kfB := issueWrite(t, ca, dir, "b", "b.example", "b2.example")
	wc, err := ca.Issue(Leaf{DNSNames: []string{"*.wild.example"}})
	if err != nil {
		t.Fatal(err)
	}
	cfW, kfW, err := WritePEM(dir, "wild", wc)
	if err != nil {
		t.Fatal(err)
	}
	r := &Reloader{}
	for _, p := range [][2]string{{cfA, kfA}, {cfB, kfB}, {cfW, kfW}} {
		if err := r.Add(p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := r.Domains(), []string{"*.wild.example", "a.example", "b.example", "b2.example"}; !slices.Equal(got, want) {
		t.Errorf("Domains = %v, want %v", got, want)
	}
	cases := []struct {
		sni  string
		want tls.Certificate
	}{
		{"a.example", a}, {"b.example", b}, {"B2.Example", b}, {"chat.wild.example", wc},
		{"x.chat.wild.example", a}, {"wild.example", a}, {"unknown.example", a}, {"", a},
	}
	for _, c := range cases {
		srv := &tls.Config{GetCertificate: r.GetCertificate}
		cli := &tls.Config{ServerName: c.sni, RootCAs: ca.Pool(), InsecureSkipVerify: true}
		peer, srvErr, cliErr := handshake(t, srv, cli)
		if srvErr != nil || cliErr != nil {
			t.Fatalf("SNI %q: server %v, client %v", c.sni, srvErr, cliErr)
		}
		if peer == nil || !peer.Equal(c.want.Leaf) {
			t.Errorf("SNI %q: served %v, want %v", c.sni, peer.DNSNames, c.want.Leaf.DNSNames)
		}
	}
}

// TestReloaderConcurrent is meant for -race: handshakes' GetCertificate
// calls race with Reload and with files being renewed.
func TestReloaderConcurrent(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	_, cf, kf := issueWrite(t, ca, dir, "example", "example.org")
	renewals := make([]tls.Certificate, 3)
	for i := range renewals {
		c, err := ca.IssueDomain("example.org")
		if err != nil {
			t.Fatal(err)
		}
		renewals[i] = c
	}
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	r := &Reloader{CheckInterval: time.Second, now: clk.now}
	if err := r.Add(cf, kf); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			for i := 0; i < 200; i++ {
				clk.advance(100 * time.Millisecond)
				c, err := r.GetCertificate(&tls.ClientHelloInfo{ServerName: "example.org"})
				if err != nil || c == nil || c.Leaf == nil {
					t.Errorf("GetCertificate: %v", err)
					return
				}
				_ = r.Domains()
			}
		})
	}
	wg.Go(func() {
		for i := 0; i < 30; i++ {
			// Write to a side directory and rename, as renewal tools do, so
			// readers never see a half-written pair... except the short gap
			// between the two renames, which Reload must tolerate.
			c := renewals[i%len(renewals)]
			tmp := t.TempDir()
			tcf, tkf, err := WritePEM(tmp, "n", c)
			if err != nil {
				t.Error(err)
				return
			}
			if err := os.Rename(tcf, cf); err != nil {
				t.Error(err)
				return
			}
			if err := os.Rename(tkf, kf); err != nil {
				t.Error(err)
				return
			}
			_ = r.Reload() // may report a transient mismatch; must not break serving
		}
	})
	wg.Wait()
	if err := r.Reload(); err != nil {
		t.Fatalf("final Reload: %v", err)
	}
	if !sameCert(served(t, r, "example.org"), renewals[29%len(renewals)]) {
		t.Error("final renewal not served")
	}
}
