package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppfed/xmppfed/translate"
)

// The line interface: one command per line, answers and events one per
// line. It is for trying the server out with nc, not for production: there
// are no passwords.
const help = `commands:
  login USER                 become USER (one of -users)
  msg JID TEXT               send TEXT to JID (asks for a delivery receipt)
  typing JID                 tell JID you are typing
  sub JID                    ask to see JID's presence
  approve JID                let JID see your presence
  deny JID                   refuse JID's request, or stop JID seeing you
  unsub JID                  stop seeing JID's presence
  presence STATE [NOTE]      available, idle, busy, dnd, brb, away or offline
  who                        your contacts, their subscription state and presence
  help                       this text
  quit                       log out and leave`

const (
	maxLine      = 64 << 10        // longest command accepted
	writeTimeout = 5 * time.Second // a user who does not read is dropped
	sendTimeout  = 10 * time.Second
)

// session is one connection of the line interface.
type session struct {
	conn net.Conn
	wmu  sync.Mutex
	user *account // guarded by chat.mu; nil until login
}

// println writes one line to the session, or fails within writeTimeout.
func (s *session) println(line string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := fmt.Fprintf(s.conn, "%s\n", strings.ReplaceAll(line, "\n", "\n  "))
	return err
}

// serveUsers accepts sessions on l until l is closed.
func (c *chat) serveUsers(l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				c.log.Warn("user listener stopped", "err", err)
			}
			return
		}
		s := &session{conn: conn}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			conn.Close()
			return
		}
		c.sessions[s] = struct{}{}
		c.wg.Add(1)
		c.mu.Unlock()
		go func() {
			defer c.wg.Done()
			c.handle(s)
		}()
	}
}

// closeSessions ends every session (their users go offline) and waits
// for their goroutines.
func (c *chat) closeSessions() {
	c.mu.Lock()
	c.closed = true
	for s := range c.sessions {
		s.conn.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// handle reads a session's commands until it ends.
func (c *chat) handle(s *session) {
	defer func() {
		c.logout(s)
		s.conn.Close()
		c.mu.Lock()
		delete(c.sessions, s)
		c.mu.Unlock()
	}()
	_ = s.println(fmt.Sprintf("welcome to %s; type 'help' for the commands", c.domain))
	sc := bufio.NewScanner(s.conn)
	sc.Buffer(make([]byte, 4096), maxLine)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		cmd, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		if cmd == "quit" {
			_ = s.println("bye")
			return
		}
		if err := s.println(c.command(s, strings.ToLower(cmd), rest)); err != nil {
			return
		}
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		_ = s.println(fmt.Sprintf("line longer than %d bytes: bye", maxLine))
	}
}

// command runs one command and returns the answer.
func (c *chat) command(s *session, cmd, args string) string {
	switch cmd {
	case "help":
		return help
	case "login":
		return c.login(s, args)
	}
	c.mu.Lock()
	a := s.user
	c.mu.Unlock()
	if a == nil {
		return "log in first: login USER"
	}
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	switch cmd {
	case "msg", "typing":
		target, text, _ := strings.Cut(args, " ")
		to, err := c.address(target)
		if err != nil {
			return err.Error()
		}
		m := &translate.Message{From: a.jid, To: to, ChatState: translate.Composing}
		if cmd == "msg" {
			if text = strings.TrimSpace(text); text == "" {
				return "usage: msg JID TEXT"
			}
			m = &translate.Message{From: a.jid, To: to, ID: newID(), Body: text, ChatState: translate.Active, RequestReceipt: true}
		}
		if to.Domainpart() == c.domain {
			return c.local(ctx, m)
		}
		if err := c.fed.Send(ctx, m); err != nil {
			return "not sent: " + errText(err)
		}
		if cmd == "typing" {
			return "ok"
		}
		return "sent " + m.ID
	case "sub", "approve", "deny", "unsub":
		to, err := c.address(args)
		if err != nil {
			return err.Error()
		}
		if to.Domainpart() == c.domain {
			return "contact lists hold remote contacts only"
		}
		action := translate.Subscribe
		switch cmd {
		case "approve":
			action = translate.Subscribed
		case "deny":
			action = translate.Unsubscribed
		case "unsub":
			action = translate.Unsubscribe
		}
		if err := c.fed.Send(ctx, &translate.Subscription{From: a.jid, To: to.Bare(), ID: newID(), Action: action}); err != nil {
			return "not sent: " + errText(err)
		}
		st, _ := c.State(ctx, a.jid, to)
		return fmt.Sprintf("ok: %s is now %s", to.Bare(), st)
	case "presence":
		state, note, _ := strings.Cut(args, " ")
		av, ok := availability(state)
		if !ok {
			return "usage: presence available|idle|busy|dnd|brb|away|offline [NOTE]"
		}
		return c.setPresence(ctx, a, av, strings.TrimSpace(note))
	case "who":
		return c.who(a)
	}
	return fmt.Sprintf("unknown command %q; type 'help'", cmd)
}

// availability returns the state 'presence' names.
func availability(name string) (translate.Availability, bool) {
	switch strings.ToLower(name) {
	case "available":
		return translate.Available, true
	case "idle":
		return translate.Idle, true
	case "busy":
		return translate.Busy, true
	case "dnd":
		return translate.DoNotDisturb, true
	case "brb":
		return translate.BeRightBack, true
	case "away":
		return translate.Away, true
	case "offline":
		return translate.Offline, true
	}
	return translate.Unknown, false
}

// address parses a JID typed by a user.
func (c *chat) address(s string) (jid.JID, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return jid.JID{}, errors.New("a JID is needed (user@domain)")
	}
	j, err := translate.ParseAddress(s)
	if err != nil {
		return jid.JID{}, fmt.Errorf("%q is not a JID: %v", s, err)
	}
	if j.Localpart() == "" {
		return jid.JID{}, fmt.Errorf("%q is a domain, not a user", s)
	}
	return j, nil
}

// local delivers a message between two users of this server.
func (c *chat) local(ctx context.Context, m *translate.Message) string {
	mm := *m
	mm.RequestReceipt = false
	if err := c.DeliverMessage(ctx, &mm); err != nil {
		return "not delivered: " + err.Error()
	}
	if m.Body == "" {
		return "ok"
	}
	return "delivered " + m.ID
}

// login attaches the session to a user, sets the user available, and
// shows what was kept while the user was away.
func (c *chat) login(s *session, name string) string {
	name = strings.TrimSpace(name)
	if !strings.Contains(name, "@") {
		name += "@" + c.domain
	}
	j, err := translate.ParseAddress(name)
	if err != nil {
		return "no such user"
	}
	a, err := c.account(j)
	if err != nil {
		return "no such user"
	}
	c.mu.Lock()
	if s.user != nil {
		c.mu.Unlock()
		return "already logged in as " + s.user.jid.String()
	}
	old := a.sess
	if old != nil {
		old.user = nil
	}
	a.sess, s.user = s, a
	backlog, receipts := a.backlog, a.receipts
	a.backlog, a.receipts = nil, nil
	c.mu.Unlock()
	if old != nil {
		_ = old.println("logged in elsewhere")
	}
	c.log.Info("user logged in", "user", a.jid.String())
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	for _, line := range backlog {
		if err := s.println(line); err != nil {
			return "" // the connection is gone; handle ends it
		}
	}
	for _, r := range receipts {
		c.sendReceipt(ctx, r)
	}
	ans := fmt.Sprintf("logged in as %s", a.jid)
	if len(backlog) > 0 {
		ans += fmt.Sprintf(" (%d kept while you were away, above)", len(backlog))
	}
	return ans + "; " + c.setPresence(ctx, a, translate.Available, "")
}

// logout detaches the session from its user, who goes offline.
func (c *chat) logout(s *session) {
	c.mu.Lock()
	a := s.user
	s.user = nil
	if a == nil || a.sess != s {
		c.mu.Unlock()
		return
	}
	a.sess = nil
	c.mu.Unlock()
	c.log.Info("user logged out", "user", a.jid.String())
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	c.setPresence(ctx, a, translate.Offline, "")
}

// setPresence records the user's presence and broadcasts it to every
// watcher (RFC 6121 §4.2; Send leaves out the watchers the policy does
// not let see it).
func (c *chat) setPresence(ctx context.Context, a *account, av translate.Availability, note string) string {
	p := translate.Presence{From: a.jid, Availability: av, Note: note}
	c.mu.Lock()
	a.presence = p
	c.mu.Unlock()
	if err := c.fed.Send(ctx, &p); err != nil {
		c.log.Info("presence not sent", "user", a.jid.String(), "err", err)
		return "presence not sent: " + errText(err)
	}
	return "you are " + presenceText(&p)
}

// who lists the user's contacts.
func (c *chat) who(a *account) string {
	cs := c.contactsOf(a)
	if len(cs) == 0 {
		return "no contacts yet: sub JID"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d contacts:", len(cs))
	for _, ct := range cs {
		pres := "-"
		if ct.state.SeesContact() {
			pres = "unknown"
			if ct.presence != nil {
				pres = presenceText(ct.presence)
			}
		}
		fmt.Fprintf(&b, "\n  %s  [%s]  %s", ct.remote, ct.state, pres)
	}
	return b.String()
}

// newID returns a random stanza id.
func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
