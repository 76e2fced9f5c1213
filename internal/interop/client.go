//go:build interop

package interop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// Message is a chat message with a body, as the clients send and see it.
type Message struct {
	stanza.Message
	Body string `xml:"body"` // the message body
	// Err is the stanza error of a type='error' message (RFC 6120 §8.3).
	Err *stanza.Error `xml:"error"`
}

// Client is a logged-in c2s session of a real user on a peer.
type Client struct {
	JID jid.JID // the full JID the server bound

	sess     *xmpp.Session
	msgs     chan Message
	served   chan struct{}
	closeMu  sync.Once
	serveErr error
	dropped  atomic.Int64
}

// Login connects to addr, negotiates STARTTLS (trusting roots, RFC 6120
// §5) and SASL (SCRAM-SHA-1 or PLAIN) as user, binds a resource, sends
// initial presence and starts collecting incoming messages. The session is
// closed when t ends.
func Login(t testing.TB, addr string, roots *x509.CertPool, user, pass string) *Client {
	t.Helper()
	j, err := jid.Parse(user)
	if err != nil {
		t.Fatalf("interop: login JID %q: %v", user, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("interop: c2s dial %s: %v", addr, err)
	}
	sess, err := xmpp.NewClientSession(ctx, j, conn,
		xmpp.StartTLS(&tls.Config{ServerName: j.Domain().String(), RootCAs: roots, MinVersion: tls.VersionTLS12}),
		xmpp.SASL("", pass, sasl.ScramSha1, sasl.Plain),
		xmpp.BindResource(),
	)
	if err != nil {
		conn.Close()
		t.Fatalf("interop: c2s login %s at %s: %v", user, addr, err)
	}
	c := &Client{JID: sess.LocalAddr(), sess: sess, msgs: make(chan Message, 4096), served: make(chan struct{})}
	go c.serve()
	t.Cleanup(c.Close)
	if err := sess.Send(ctx, stanza.Presence{Type: stanza.AvailablePresence}.Wrap(nil)); err != nil {
		t.Fatalf("interop: initial presence of %s: %v", user, err)
	}
	return c
}

func (c *Client) serve() {
	defer close(c.served)
	c.serveErr = c.sess.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		if start.Name.Local != "message" {
			return nil
		}
		var m Message
		// mellium hands the handler the element's tokens after its start
		// element: put it back so the decoder sees a balanced element.
		d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r))
		if err := d.Decode(&m); err != nil {
			return nil
		}
		select {
		case c.msgs <- m:
		default: // never block the session; counted so tests can tell
			c.dropped.Add(1)
		}
		return nil
	}))
}

// Send sends a chat message with body to to.
func (c *Client) Send(ctx context.Context, to, body string) error {
	tj, err := jid.Parse(to)
	if err != nil {
		return fmt.Errorf("interop: recipient %q: %w", to, err)
	}
	return c.sess.Encode(ctx, Message{
		Message: stanza.Message{To: tj, Type: stanza.ChatMessage, ID: "interop-" + body},
		Body:    body,
	})
}

// Wait returns the first message whose body is body, skipping others, or
// an error after timeout.
func (c *Client) Wait(body string, timeout time.Duration) (Message, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case m := <-c.msgs:
			if m.Body == body {
				return m, nil
			}
		case <-c.served:
			return Message{}, fmt.Errorf("interop: %s: session ended before %q arrived: %v", c.JID, body, c.serveErr)
		case <-deadline.C:
			return Message{}, fmt.Errorf("interop: %s: no message %q within %v", c.JID, body, timeout)
		}
	}
}

// WaitAll waits until a message has arrived for every body in bodies and
// returns the bodies still missing after timeout, and whether the bodies
// that did arrive came in the order given.
func (c *Client) WaitAll(bodies []string, timeout time.Duration) (missing []string, inOrder bool) {
	pos := make(map[string]int, len(bodies))
	for i, b := range bodies {
		pos[b] = i
	}
	seen := make(map[string]bool, len(bodies))
	inOrder, last := true, -1
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(seen) < len(bodies) {
		select {
		case m := <-c.msgs:
			if i, ok := pos[m.Body]; ok && !seen[m.Body] {
				seen[m.Body] = true
				inOrder = inOrder && i > last
				last = i
			}
		case <-deadline.C:
			for _, b := range bodies {
				if !seen[b] {
					missing = append(missing, b)
				}
			}
			return missing, inOrder
		case <-c.served:
			for _, b := range bodies {
				if !seen[b] {
					missing = append(missing, b)
				}
			}
			return missing, inOrder
		}
	}
	return nil, inOrder
}

// Dropped is how many messages the client had no room to record.
func (c *Client) Dropped() int64 { return c.dropped.Load() }

// Close ends the session and its connection and waits (bounded) for the
// reader to stop.
func (c *Client) Close() {
	c.closeMu.Do(func() {
		_ = c.sess.Close()
		_ = c.sess.Conn().Close()
		select {
		case <-c.served:
		case <-time.After(10 * time.Second):
		}
	})
}
