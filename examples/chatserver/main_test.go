package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"mellium.im/xmpp/jid"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/federation/federationtest"
	"github.com/xmppfed/xmppfed/translate"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// started is a chat server running in the test.
type started struct {
	fedAddr, userAddr net.Addr
	stdout, stderr    *syncBuffer
	stop              func() error
}

// start runs serve with cfg until the test ends (or stop).
func start(t *testing.T, cfg config) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{stdout: new(syncBuffer), stderr: new(syncBuffer)}
	up := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, s.stdout, s.stderr, func(fed, users net.Addr) {
			s.fedAddr, s.userAddr = fed, users
			close(up)
		})
	}()
	select {
	case <-up:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v\nlog:\n%s", err, s.stderr)
	}
	var once sync.Once
	var err error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { _ = s.stop() })
	return s
}

// client is a user of the line interface.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	seen []string
}

func dial(t *testing.T, addr net.Addr) *client {
	t.Helper()
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("welcome to ")
	return c
}

func (c *client) send(line string) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.conn, "%s\n", line); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads lines until one contains want, and returns it.
func (c *client) expect(want string) string {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("waiting for %q: %v; the session printed:\n%s", want, err, strings.Join(c.seen, ""))
		}
		c.seen = append(c.seen, line)
		if strings.Contains(line, want) {
			return strings.TrimSuffix(line, "\n")
		}
	}
}

// TestFederatedConversation runs the chat server against a fake remote
// domain (federationtest) and talks through the line interface: messages
// both ways with a receipt, a subscription and presence, a bounce and a
// refusal by the policy.
func TestFederatedConversation(t *testing.T) {
	env := federationtest.NewEnv(t)
	peer := env.NewDomain("peer.test")
	bob := peer.User("bob")
	dir := t.TempDir()

	cert, err := env.CA().IssueDomain("chat.test")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := certs.WritePEM(dir, "chat", cert)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, env.CA().RootPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	partners := filepath.Join(dir, "partners.toml")
	if err := os.WriteFile(partners, []byte(`
[[partner]]
domain = "peer.test"
type = "federated"

[[policy]]
name = "global"
enable_xmpp_access = true
enable_federation_access = true
`), 0o600); err != nil {
		t.Fatal(err)
	}

	s := start(t, config{
		domain: "chat.test", listen: "127.0.0.1:0", listenUsers: "127.0.0.1:0",
		users: []string{"alice", "carol"}, certFile: certFile, keyFile: keyFile,
		partners: partners, caFile: caFile, dns: env.DNS().Addr,
	})
	// Publish the chat server in the test DNS, as an operator would
	// (RFC 6120 §3.2.1).
	port := uint16(s.fedAddr.(*net.TCPAddr).Port)
	env.DNS().AddSRV("_xmpp-server._tcp", "chat.test", "xmpp.chat.test", port, 0, 0)
	env.DNS().AddHost("xmpp.chat.test", netip.MustParseAddr("127.0.0.1"))
	if !strings.Contains(s.stdout.String(), "partners: peer.test (federated)") {
		t.Errorf("the banner does not list the partner:\n%s", s.stdout)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	alice := dial(t, s.userAddr)
	alice.send("msg bob@peer.test hi")
	alice.expect("log in first")
	alice.send("login alice")
	alice.expect("logged in as alice@chat.test; you are available")

	// alice -> bob, with a receipt request.
	alice.send("msg bob@peer.test hello bob")
	id := strings.TrimPrefix(alice.expect("sent "), "sent ")
	m := bob.Expect(t, ctx, func(v translate.Stanza) bool {
		m, ok := v.(*translate.Message)
		return ok && m.Body != ""
	}).(*translate.Message)
	if m.Body != "hello bob" || m.ID != id || !m.RequestReceipt || m.From.String() != "alice@chat.test" {
		t.Errorf("bob got %+v, want 'hello bob' from alice@chat.test with id %q and a receipt request", m, id)
	}
	if err := bob.Send(ctx, &translate.Message{To: m.From, ReceiptFor: m.ID}); err != nil {
		t.Fatal(err)
	}
	alice.expect("* bob@peer.test received your message " + id)

	// bob -> alice: shown, and a receipt goes back (XEP-0184).
	if err := bob.Send(ctx, &translate.Message{To: m.From, ID: "b1", Body: "hi alice", RequestReceipt: true}); err != nil {
		t.Fatal(err)
	}
	alice.expect("[bob@peer.test] hi alice")
	bob.Expect(t, ctx, func(v translate.Stanza) bool {
		r, ok := v.(*translate.Message)
		return ok && r.ReceiptFor == "b1"
	})

	// A subscription and presence (RFC 6121 §3.1, §4).
	alice.send("sub bob@peer.test")
	alice.expect("ok: bob@peer.test is now None + Pending Out")
	bob.Expect(t, ctx, func(v translate.Stanza) bool {
		s, ok := v.(*translate.Subscription)
		return ok && s.Action == translate.Subscribe && s.From.String() == "alice@chat.test"
	})
	if err := bob.Approve(ctx, "alice@chat.test"); err != nil {
		t.Fatal(err)
	}
	alice.expect("* bob@peer.test approved: you see their presence")
	if err := bob.SendPresence(ctx, "alice@chat.test", translate.Away, "lunch"); err != nil {
		t.Fatal(err)
	}
	alice.expect("* bob@peer.test is away: lunch")
	alice.send("who")
	alice.expect("bob@peer.test  [To]  away: lunch")

	// alice's presence goes to bob once bob is allowed to see it: bob
	// asks, the server approves for alice (a federated partner).
	if err := bob.Subscribe(ctx, "alice@chat.test"); err != nil {
		t.Fatal(err)
	}
	alice.expect("* bob@peer.test now sees your presence")
	alice.send("presence dnd in a meeting")
	alice.expect("you are do-not-disturb: in a meeting")
	p := bob.Expect(t, ctx, func(v translate.Stanza) bool {
		p, ok := v.(*translate.Presence)
		return ok && p.Availability == translate.DoNotDisturb
	}).(*translate.Presence)
	if p.Note != "in a meeting" {
		t.Errorf("bob sees alice's note %q, want %q", p.Note, "in a meeting")
	}

	// A user peer.test does not have: the remote error comes back.
	alice.send("msg nobody@peer.test are you there")
	alice.expect("sent ")
	// RFC 6121 §8.5.2: service-unavailable for a user that does not exist.
	alice.expect("! your message ")
	if line := alice.seen[len(alice.seen)-1]; !strings.Contains(line, "was not delivered: service-unavailable") {
		t.Errorf("the bounce says %q, want service-unavailable", line)
	}
	// A domain that is not a partner: refused at once.
	alice.send("msg eve@stranger.test hello")
	alice.expect("not sent: refused by the policy (not_partner)")

	// A user of this server: delivered locally.
	carol := dial(t, s.userAddr)
	carol.send("login carol")
	carol.expect("logged in as carol@chat.test")
	alice.send("msg carol@chat.test lunch?")
	alice.expect("delivered ")
	carol.expect("[alice@chat.test] lunch?")

	// A message for a user who is not logged in waits for the login.
	// Stanzas of one stream are handled in order, so once alice has the
	// second message, carol's is kept.
	carol.send("quit")
	carol.expect("bye")
	if err := bob.Send(ctx, &translate.Message{To: jid.MustParse("carol@chat.test"), ID: "b2", Body: "for later"}); err != nil {
		t.Fatal(err)
	}
	if err := bob.Send(ctx, &translate.Message{To: jid.MustParse("alice@chat.test"), ID: "b3", Body: "after carol's"}); err != nil {
		t.Fatal(err)
	}
	alice.expect("[bob@peer.test] after carol's")
	carol = dial(t, s.userAddr)
	carol.send("login carol")
	carol.expect("[bob@peer.test] for later")
	carol.expect("logged in as carol@chat.test (1 kept while you were away, above)")

	if err := s.stop(); err != nil {
		t.Errorf("serve: %v", err)
	}
	if strings.Contains(s.stderr.String(), "hello bob") {
		t.Errorf("a message body was logged:\n%s", s.stderr)
	}
}

// TestDefaults starts the server as `go run ./examples/chatserver` does,
// but on random loopback ports: the embedded partners file and a test
// CA certificate for chat.localhost.
func TestDefaults(t *testing.T) {
	cfg, code := parseFlags([]string{"-listen", "127.0.0.1:0", "-listen-users", "127.0.0.1:0"}, new(bytes.Buffer))
	if code != -1 {
		t.Fatalf("parseFlags: exit status %d", code)
	}
	s := start(t, cfg)
	for _, want := range []string{"chatserver for chat.localhost", "users: alice@chat.localhost, bob@chat.localhost", "partners: prosody.localhost (federated)"} {
		if !strings.Contains(s.stdout.String(), want) {
			t.Errorf("the banner lacks %q:\n%s", want, s.stdout)
		}
	}
	c := dial(t, s.userAddr)
	c.send("help")
	c.expect("presence STATE [NOTE]")
	c.send("login bob")
	c.expect("logged in as bob@chat.localhost")
	c.send("msg someone@nowhere.example hi")
	c.expect("not sent: refused by the policy (not_partner)")
	c.send("presence sleepy")
	c.expect("usage: presence")
	c.send("frobnicate")
	c.expect(`unknown command "frobnicate"`)
	// Bad input gets an answer, never a panic or a silence.
	for _, tc := range []struct{ line, want string }{
		{"login", "no such user"},
		{"login alice", "already logged in as bob@chat.localhost"},
		{"msg", "a JID is needed"},
		{"msg prosody.localhost hi", `"prosody.localhost" is a domain, not a user`},
		{"msg a@b@c hi", `"a@b@c" is not a JID`},
		{"msg alice@chat.localhost", "usage: msg JID TEXT"},
		{"sub alice@chat.localhost", "contact lists hold remote contacts only"},
		{"approve", "a JID is needed"},
		{"presence", "usage: presence"},
		{"who", "no contacts yet"},
	} {
		c.send(tc.line)
		c.expect(tc.want)
	}
	other := dial(t, s.userAddr)
	other.send("login nobody")
	other.expect("no such user")
	other.send("who")
	other.expect("log in first")
	other.send(strings.Repeat("x", maxLine+1))
	other.expect(fmt.Sprintf("line longer than %d bytes: bye", maxLine))
	if err := s.stop(); err != nil {
		t.Errorf("serve: %v", err)
	}
	if !strings.Contains(s.stderr.String(), "throw-away test CA") {
		t.Errorf("no warning about the test certificate:\n%s", s.stderr)
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"-h"}, 0, "usage: chatserver"},
		{[]string{"-cert", "x.pem"}, 2, "-cert and -key go together"},
		{[]string{"-users", " , "}, 2, "-users names no user"},
		{[]string{"extra"}, 2, "no arguments expected"},
		{[]string{"-listen", "127.0.0.1:0", "-listen-users", "127.0.0.1:0", "-domain", "not a domain"}, 1, "is not a domain"},
		{[]string{"-listen", "127.0.0.1:0", "-listen-users", "127.0.0.1:0", "-partners", "/nonexistent/dir/p.toml"}, 1, "-partners: "},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errOut)
		if code != tc.code {
			t.Errorf("%q: exit status %d, want %d; standard error:\n%s", tc.args, code, tc.code, &errOut)
		}
		if !strings.Contains(errOut.String(), tc.err) {
			t.Errorf("%q: standard error %q lacks %q", tc.args, &errOut, tc.err)
		}
	}
}
