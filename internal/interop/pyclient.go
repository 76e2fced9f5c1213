//go:build interop

package interop

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// PyScript is the slixmpp client PyClient runs, relative to this package's
// directory (go test's working directory).
const PyScript = "testdata/slixmpp_client.py"

// pyReadyTimeout bounds the Python client's start: interpreter, slixmpp
// import, TLS, SASL, roster and initial presence.
const pyReadyTimeout = 30 * time.Second

// pyCommandTimeout bounds the wait for a command's acknowledgement when
// the caller's context has no earlier deadline.
const pyCommandTimeout = 10 * time.Second

// PyClient is a real XMPP user logged in over c2s by the Python script
// PyScript with Debian's python3-slixmpp: a client nobody here wrote, in
// another language. It implements UserClient by writing JSON commands to
// the script's standard input and decoding the JSON reports on its
// standard output (the protocol is described at the top of the script).
type PyClient struct {
	jid  string // bare
	full string // as bound by the server

	cmd     *exec.Cmd
	stdin   *os.File    // write end of the script's standard input
	stderr  *syncBuffer // the script's log (capped)
	events  chan Event
	acks    chan pyReport
	ready   chan pyReport // the first "ready" or "failed" report
	read    chan struct{} // closed when the stdout reader has ended
	exited  chan struct{} // closed when the process has been waited for
	waitErr error         // the process's exit status, set before exited closes

	mu        sync.Mutex // serializes commands (a write and its ack)
	seq       int
	closeOnce sync.Once
	cancel    context.CancelFunc
	dropped   atomic.Int64 // events the buffer had no room for
}

var _ UserClient = (*PyClient)(nil)

// pyReport is one line the script writes on standard output.
type pyReport struct {
	Kind           string `json:"kind"`
	JID            string `json:"jid"`
	Cmd            string `json:"cmd"`
	Seq            int    `json:"seq"`
	Error          string `json:"error"`
	Stanza         string `json:"stanza"`
	From           string `json:"from"`
	ID             string `json:"id"`
	Body           string `json:"body"`
	ChatState      string `json:"chat_state"`
	ReceiptRequest bool   `json:"receipt_request"`
	ReceiptFor     string `json:"receipt_for"`
	Show           string `json:"show"`
	Status         string `json:"status"`
	Unavailable    bool   `json:"unavailable"`
	ErrorCondition string `json:"error_condition"`
	ErrorType      string `json:"error_type"`
}

// event converts a stanza report into an Event.
func (r pyReport) event() Event {
	return Event{
		Kind: r.Kind, From: r.From, ID: r.ID, Body: r.Body, ChatState: r.ChatState,
		ReceiptRequest: r.ReceiptRequest, ReceiptFor: r.ReceiptFor,
		Show: r.Show, Status: r.Status, Unavailable: r.Unavailable,
		ErrorCondition: r.ErrorCondition, ErrorType: r.ErrorType,
	}
}

// pyCommand is one line written to the script's standard input.
type pyCommand struct {
	Cmd            string `json:"cmd"`
	Seq            int    `json:"seq"`
	To             string `json:"to,omitempty"`
	Body           string `json:"body,omitempty"`
	ID             string `json:"id,omitempty"`
	ChatState      string `json:"chat_state,omitempty"`
	RequestReceipt bool   `json:"request_receipt,omitempty"`
	State          string `json:"state,omitempty"`
	Show           string `json:"show,omitempty"`
	Status         string `json:"status,omitempty"`
	Unavailable    bool   `json:"unavailable,omitempty"`
}

// python returns the interpreter that has Debian's python3-slixmpp:
// /usr/bin/python3 when it exists (a python3 earlier in PATH, such as a
// pyenv shim, does not see Debian's dist-packages), else python3 from PATH.
// It checks each time (a fraction of a second per client start) rather
// than caching the answer in package state.
func python() (string, error) {
	pyPath := "/usr/bin/python3"
	if _, err := os.Stat(pyPath); err != nil {
		if pyPath, err = exec.LookPath("python3"); err != nil {
			return "", fmt.Errorf("interop: python3 not found (run .ci/interop-setup): %w", err)
		}
	}
	if _, err := run(context.Background(), 30*time.Second, nil, pyPath, "-c", "import slixmpp"); err != nil {
		return "", fmt.Errorf("interop: %s cannot import slixmpp (run .ci/interop-setup, which installs python3-slixmpp): %w", pyPath, err)
	}
	return pyPath, nil
}

// requirePython skips (fails, when the CI environment variable is set)
// unless python3 with slixmpp is available.
func requirePython(t testing.TB) string {
	t.Helper()
	p, err := python()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return p
}

// WriteCAFile writes the test CA's root certificate to a PEM file in a
// temporary directory removed when t ends, for clients to trust.
func WriteCAFile(t testing.TB, pki *PKI) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, pki.CA.RootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// StartPyClient logs user (a bare JID) in with password pass at the c2s
// address addr (host:port, connected to directly, no DNS), requiring
// STARTTLS with a certificate that verifies for the user's domain against
// the PEM file caFile. It returns once the session has started (roster
// fetched, initial presence sent), or fails t after pyReadyTimeout with
// the script's log. The process runs in its own process group and is
// killed, at the latest, when t ends.
func StartPyClient(t testing.TB, addr, caFile, user, pass string) *PyClient {
	t.Helper()
	py := requirePython(t)
	script, err := filepath.Abs(PyScript)
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("interop: python client %s: address %q: %v", user, addr, err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, py, "-u", script, "--jid", user, "--host", host, "--port", port, "--ca", caFile, "--debug")
	cmd.Env = append(os.Environ(), "XMPPFED_PYCLIENT_PASSWORD="+pass, "PYTHONDONTWRITEBYTECODE=1")
	c := &PyClient{
		jid:    Bare(user),
		cmd:    cmd,
		stdin:  inW,
		stderr: new(syncBuffer),
		events: make(chan Event, 4096),
		acks:   make(chan pyReport, 64),
		ready:  make(chan pyReport, 1),
		read:   make(chan struct{}),
		exited: make(chan struct{}),
		cancel: cancel,
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, c.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Start()
	// The child has its own copies of these ends now.
	inR.Close()
	outW.Close()
	if err != nil {
		cancel()
		inW.Close()
		outR.Close()
		t.Fatalf("interop: python client %s: start %s: %v", user, py, err)
	}
	go c.readReports(outR)
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(c.Close)

	timer := time.NewTimer(pyReadyTimeout)
	defer timer.Stop()
	var r pyReport
	select {
	case r = <-c.ready:
	case <-c.read:
		// The reader hands over "ready" or "failed" before it ends.
		select {
		case r = <-c.ready:
		default:
			c.Close()
			t.Fatalf("interop: python client %s at %s ended before its session started (%v)\n%s", user, addr, c.exitStatus(), c.Log())
		}
	case <-timer.C:
		c.Close()
		t.Fatalf("interop: python client %s at %s: no session after %v\n%s", user, addr, pyReadyTimeout, c.Log())
	}
	if r.Kind != "ready" {
		c.Close()
		t.Fatalf("interop: python client %s at %s: %s\n%s", user, addr, r.Error, c.Log())
	}
	c.full = r.JID
	return c
}

// readReports decodes the script's standard output until it ends (the
// process exited or was killed), then closes c.read.
func (c *PyClient) readReports(out *os.File) {
	defer close(c.read)
	defer out.Close()
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var r pyReport
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			fmt.Fprintf(c.stderr, "pyclient: undecodable report %q: %v\n", sc.Text(), err)
			continue
		}
		switch r.Kind {
		case "ready", "failed":
			select {
			case c.ready <- r:
			default: // a later failure is only logged
				fmt.Fprintf(c.stderr, "pyclient: %s report after start: %s\n", r.Kind, r.Error)
			}
		case "ack":
			select {
			case c.acks <- r:
			default: // nobody is waiting for it (its command timed out)
			}
		default:
			select {
			case c.events <- r.event():
			default:
				c.dropped.Add(1)
			}
		}
	}
}

// JID returns the user's bare JID.
func (c *PyClient) JID() string { return c.jid }

// FullJID returns the full JID the server bound for the session.
func (c *PyClient) FullJID() string { return c.full }

// Log returns the end of the script's log (slixmpp's, with every stanza),
// for failure messages.
func (c *PyClient) Log() string {
	s := c.stderr.String()
	const n = 16 << 10
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return "python client " + c.jid + " log:\n" + s
}

// Dropped is how many received stanzas the client had no room to record.
func (c *PyClient) Dropped() int64 { return c.dropped.Load() }

// do sends one command and waits for its acknowledgement, bounded by ctx
// and pyCommandTimeout; it returns the ack.
func (c *PyClient) do(ctx context.Context, cmd pyCommand) (pyReport, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	cmd.Seq = c.seq
	line, err := json.Marshal(cmd)
	if err != nil {
		return pyReport{}, err
	}
	deadline := time.Now().Add(pyCommandTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.stdin.SetWriteDeadline(deadline); err != nil {
		return pyReport{}, fmt.Errorf("interop: python client %s: %s: %w", c.jid, cmd.Cmd, err)
	}
	if _, err := c.stdin.Write(append(line, '\n')); err != nil {
		return pyReport{}, fmt.Errorf("interop: python client %s: writing %s: %w", c.jid, cmd.Cmd, err)
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		select {
		case a := <-c.acks:
			if a.Seq != cmd.Seq {
				continue // the late ack of an earlier command that timed out
			}
			if a.Error != "" {
				return a, fmt.Errorf("interop: python client %s: %s: %s", c.jid, cmd.Cmd, a.Error)
			}
			return a, nil
		case <-c.read:
			return pyReport{}, fmt.Errorf("interop: python client %s: %s: the client has exited (%v)", c.jid, cmd.Cmd, c.exitStatus())
		case <-ctx.Done():
			return pyReport{}, fmt.Errorf("interop: python client %s: %s: %w", c.jid, cmd.Cmd, ctx.Err())
		case <-timer.C:
			return pyReport{}, fmt.Errorf("interop: python client %s: %s: no acknowledgement within %v", c.jid, cmd.Cmd, pyCommandTimeout)
		}
	}
}

// exitStatus is the process's exit error once known, else "still running".
func (c *PyClient) exitStatus() any {
	select {
	case <-c.exited:
		return c.waitErr
	default:
		return "still running"
	}
}

// SendMessage sends a chat message and returns its stanza id.
func (c *PyClient) SendMessage(ctx context.Context, to, body string, o MessageOptions) (string, error) {
	a, err := c.do(ctx, pyCommand{Cmd: "send_message", To: to, Body: body, ID: o.ID, ChatState: o.ChatState, RequestReceipt: o.RequestReceipt})
	return a.ID, err
}

// SendChatState sends a body-less chat message with the chat state state.
func (c *PyClient) SendChatState(ctx context.Context, to, state string) error {
	_, err := c.do(ctx, pyCommand{Cmd: "chat_state", To: to, State: state})
	return err
}

// SendReceipt sends an XEP-0184 receipt for the message id to to.
func (c *PyClient) SendReceipt(ctx context.Context, to, id string) error {
	_, err := c.do(ctx, pyCommand{Cmd: "receipt", To: to, ID: id})
	return err
}

// SendPresence sends a broadcast or directed presence.
func (c *PyClient) SendPresence(ctx context.Context, p Presence) error {
	_, err := c.do(ctx, pyCommand{Cmd: "presence", To: p.To, Show: p.Show, Status: p.Status, Unavailable: p.Unavailable})
	return err
}

// Subscribe asks to to share its presence (type='subscribe').
func (c *PyClient) Subscribe(ctx context.Context, to string) error {
	_, err := c.do(ctx, pyCommand{Cmd: "subscribe", To: to})
	return err
}

// Approve approves from's subscription request (type='subscribed').
func (c *PyClient) Approve(ctx context.Context, from string) error {
	_, err := c.do(ctx, pyCommand{Cmd: "approve", To: from})
	return err
}

// Next returns the next received stanza. Stanzas received before the
// process ended are still returned after it has; then Next fails.
func (c *PyClient) Next(ctx context.Context) (Event, error) {
	select {
	case e := <-c.events:
		return e, nil
	default:
	}
	select {
	case e := <-c.events:
		return e, nil
	case <-c.read:
		select {
		case e := <-c.events:
			return e, nil
		default:
		}
		return Event{}, fmt.Errorf("interop: python client %s has exited (%v)", c.jid, c.exitStatus())
	case <-ctx.Done():
		return Event{}, ctx.Err()
	}
}

// Close logs the user out (quit, then end of input), waits up to 10 s for
// the script to end, kills its process group otherwise, and waits (bounded)
// for the reader and the process; it may be called more than once.
func (c *PyClient) Close() {
	c.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, _ = c.do(ctx, pyCommand{Cmd: "quit"})
		cancel()
		c.stdin.Close()
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
		}
		// Kills the process group (cmd.Cancel) unless the process has
		// already been waited for.
		c.cancel()
		for _, ch := range []chan struct{}{c.exited, c.read} {
			select {
			case <-ch:
			case <-time.After(10 * time.Second):
			}
		}
	})
}
