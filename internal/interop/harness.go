//go:build interop

package interop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xmppfed/xmppfed/certs"
)

// Mode says how a peer authenticates our server.
type Mode string

// Modes.
const (
	// External: the peer trusts the test CA both ways, so SASL EXTERNAL
	// (XEP-0178) authenticates the streams.
	External Mode = "external"
	// Dialback: the peer does not accept our certificate, so Server
	// Dialback (XEP-0220) over TLS authenticates the streams.
	Dialback Mode = "dialback"
	// Untrusted is Dialback with, in addition, the peer's own certificate
	// issued by PKI.Other, which our server does not trust: the peer can
	// authenticate itself only with dialback, never with SASL EXTERNAL.
	// Its clients trust both CAs (PKI.ClientRoots, Peer.CAFile).
	Untrusted Mode = "untrusted"
)

// PKI is the test CA plus a second, untrusted CA for dialback mode.
type PKI struct {
	CA    *certs.TestCA // trusted by every server in the suite
	Other *certs.TestCA // trusted by nobody: certificates that force dialback
}

// NewPKI creates both CAs.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	ca, err := certs.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	other, err := certs.NewTestCA()
	if err != nil {
		t.Fatal(err)
	}
	return &PKI{CA: ca, Other: other}
}

// Leaf issues a certificate for domain with a DNS-ID and an SRV-ID but no
// XmppAddr: ejabberd 23.01 crashes (badarg in
// xmpp_stream_pkix:get_domains_from_san/1) on a domain-only XmppAddr in a
// peer certificate. Both EKUs, because s2s certificates serve as TLS client
// certificates on outbound streams (XEP-0178 §3).
func (p *PKI) Leaf(t testing.TB, domain string) tls.Certificate {
	t.Helper()
	return leafFrom(t, p.CA, domain)
}

// OtherLeaf is Leaf issued by the untrusted CA.
func (p *PKI) OtherLeaf(t testing.TB, domain string) tls.Certificate {
	t.Helper()
	return leafFrom(t, p.Other, domain)
}

// ClientRoots is a pool with both CAs, for c2s clients, which must log in
// whichever CA issued the peer's certificate.
func (p *PKI) ClientRoots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CA.RootPEM())
	pool.AppendCertsFromPEM(p.Other.RootPEM())
	return pool
}

// leafFrom issues Leaf's certificate for domain from ca.
func leafFrom(t testing.TB, ca *certs.TestCA, domain string) tls.Certificate {
	t.Helper()
	c, err := ca.Issue(certs.Leaf{
		DNSNames:    []string{domain},
		SRVNames:    []string{"_xmpp-server." + domain},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// RootCAs is a pool with the test CA only.
func (p *PKI) RootCAs() *x509.CertPool { return p.CA.Pool() }

// account is a system user a server runs as.
type account struct {
	name     string
	uid, gid int
}

func lookupAccount(name string) (account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return account{}, fmt.Errorf("interop: system user %q (is the package installed? run .ci/interop-setup): %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return account{}, fmt.Errorf("interop: uid of %q: %w", name, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return account{}, fmt.Errorf("interop: gid of %q: %w", name, err)
	}
	return account{name: name, uid: uid, gid: gid}, nil
}

// requireRoot skips (fails, when the CI environment variable is set) unless
// the test runs as root with the tool installed: the servers drop
// privileges to their own users, and the DNS server needs port 53.
func requireRoot(t testing.TB, tool string) {
	t.Helper()
	// Under CI a missing prerequisite is a failure: a skipped interop
	// suite must not pass for a tested one.
	skip := t.Skipf
	if os.Getenv("CI") != "" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("interop: needs root (servers drop to their own users; DNS on port 53)")
	}
	if _, err := exec.LookPath(tool); err != nil {
		skip("interop: %s not installed (run .ci/interop-setup): %v", tool, err)
	}
}

// workDir makes a fresh directory readable by a server's system user
// (t.TempDir's parents are 0700 root) owned by acct, removed when t ends.
func workDir(t testing.TB, prefix string, acct account) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "xmppfed-interop-"+prefix+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if os.Getenv("XMPPFED_INTEROP_KEEP") != "" {
			t.Logf("keeping %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	chown(t, acct, dir)
	return dir
}

// chown gives paths to acct.
func chown(t testing.TB, acct account, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Chown(p, acct.uid, acct.gid); err != nil {
			t.Fatal(err)
		}
	}
}

// writeFile writes data to dir/name, owned by acct.
func writeFile(t testing.TB, acct account, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	chown(t, acct, p)
	return p
}

// mkdirs creates dir/name for each name, owned by acct.
func mkdirs(t testing.TB, acct account, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(p, 0o750); err != nil {
			t.Fatal(err)
		}
		chown(t, acct, p)
	}
}

// writeCert writes c as dir/name.crt and dir/name.key owned by acct.
func writeCert(t testing.TB, acct account, dir, name string, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, err := certs.WritePEM(dir, name, c)
	if err != nil {
		t.Fatal(err)
	}
	chown(t, acct, certFile, keyFile)
	return certFile, keyFile
}

// process is a server running in its own process group.
type process struct {
	stopOnce sync.Once
	name     string
	cmd      *exec.Cmd
	log      *os.File
	done     chan struct{}
	err      error
}

// sandbox returns the command line that runs argv as acct in a new PID
// namespace (and, if resolvConf is set, a private mount namespace where
// resolvConf is bind-mounted over /etc/resolv.conf). The namespace's init
// is a root shell that outlives the server and carries unshare's
// --kill-child death signal (setpriv's credential change would clear it on
// the server itself): if the test binary dies without cleaning up, the
// kernel kills unshare (Pdeathsig), then init, and so the whole namespace.
func sandbox(acct account, resolvConf string, argv ...string) []string {
	script := `setpriv --reuid="$U" --regid="$U" --init-groups -- "$@"; rc=$?; exit $rc`
	args := []string{"unshare", "--pid", "--fork", "--kill-child"}
	if resolvConf != "" {
		script = `mount --bind "$R" /etc/resolv.conf || exit 1; ` + script
		args = append(args, "--mount", "--propagation", "private")
	}
	return append(append(args, "--", "env", "U="+acct.name, "R="+resolvConf, "sh", "-c", script, "sh"), argv...)
}

// startProcessFor runs argv (the server called name) in its own process
// group with stdout and stderr appended to logPath, and kills the whole
// group when owner ends: owner is the test that started the server first,
// which may be a parent of t when a subtest restarts it (failures go to t).
func startProcessFor(t, owner testing.TB, name, logPath string, env []string, argv ...string) *process {
	t.Helper()
	lf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("interop: start %s: %v", argv[0], err)
	}
	p := &process{name: name, cmd: cmd, log: lf, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	owner.Cleanup(p.stop)
	return p
}

// exited reports whether the process has ended, with its error.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after 10 s, and
// waits (bounded) for the leader. The group is killed again at the end so
// children that outlive a graceful leader go too. Later calls do nothing.
func (p *process) stop() { p.stopOnce.Do(p.terminate) }

// terminate is stop's one run.
func (p *process) terminate() {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	p.log.Close()
}

// run runs a short command in its own process group with a timeout that
// kills the whole group, and returns its combined output.
func run(ctx context.Context, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("interop: %s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// waitPort polls addr until it accepts a TCP connection, p exits, or the
// timeout passes. The poll interval is fixed and the attempts bounded.
func waitPort(p *process, addr string, timeout time.Duration) error {
	const step = 100 * time.Millisecond
	n := int(timeout / step)
	for range n {
		if done, err := p.exited(); done {
			return fmt.Errorf("interop: %s exited before listening on %s: %v", p.name, addr, err)
		}
		c, err := net.DialTimeout("tcp", addr, step)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(step)
	}
	return fmt.Errorf("interop: %s not listening on %s after %v", p.name, addr, timeout)
}

// tail returns the last n bytes of the file at path, for failure messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err.Error()
	}
	off := max(st.Size()-n, 0)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, os.ErrClosed) && len(b) == 0 {
		return err.Error()
	}
	return string(b)
}

// parallel runs fns concurrently and returns the first error.
func parallel(fns ...func() error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(fns))
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
