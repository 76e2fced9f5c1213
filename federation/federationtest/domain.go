package federationtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"sync"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
	"github.com/xmppfed/xmppfed/translate"
)

// Namespaces the Domain reads and writes.
const (
	nsServer = "jabber:server"  // RFC 6120 §4.8.3
	nsPing   = "urn:xmpp:ping"  // XEP-0199
	nsStanza = stanza.NSError   // RFC 6120 §8.3.3
	resource = "federationtest" // the resource of every User's full JID
)

// DomainOption changes how Env.NewDomain sets up a Domain. Options
// compose; later ones see the changes of earlier ones.
type DomainOption func(*domainConfig)

type domainConfig struct {
	partners  []policy.Partner
	edits     []func(*policy.Config)
	configure []func(*s2s.Server)
	directTLS bool
	sink      func(*User, translate.Stanza)
}

// Partners makes the Domain federate with exactly these partners instead
// of every domain (open federation): others are refused, inbound and
// outbound, with the policy's denial (policy-violation on the stream,
// service-unavailable to the sender; REFERENCE §5.2).
func Partners(p ...policy.Partner) DomainOption {
	return func(c *domainConfig) { c.partners = append(c.partners, p...) }
}

// EditPolicy changes the Domain's policy configuration before it starts:
// gateway settings, blocked domains, the default partner's TLS, SASL and
// dialback settings, access policies.
func EditPolicy(edit func(*policy.Config)) DomainOption {
	return func(c *domainConfig) { c.edits = append(c.edits, edit) }
}

// ConfigureServer changes the Domain's s2s.Server before it starts
// serving: Limits, Logger, DebugWriter, TLSConfig. Replacing Handler,
// Bounce or Policy takes the Domain's recording and scripting away.
func ConfigureServer(configure func(*s2s.Server)) DomainOption {
	return func(c *domainConfig) { c.configure = append(c.configure, configure) }
}

// DirectTLS makes the Domain listen for direct TLS (XEP-0368) and publish
// an _xmpps-server._tcp SRV record instead of _xmpp-server._tcp.
func DirectTLS() DomainOption {
	return func(c *domainConfig) { c.directTLS = true }
}

// Sink hands each stanza for one of the Domain's users that
// translate.Decode reads (a message, presence, subscription or probe) to
// f, with the User it is for, instead of recording it: User.Next,
// User.Received, Domain.NextRaw and Domain.Raw never see such a stanza,
// so a long-running test (a soak) keeps no memory per stanza received.
// Error stanzas and bounces are still recorded for NextError, and stanzas
// to the domain itself for NextRaw. f is called from the goroutine of the
// stream that carried the stanza, for one stanza at a time per stream, and
// from several streams at once: it must not block for long; it may call
// the User's Send methods.
func Sink(f func(u *User, v translate.Stanza)) DomainOption {
	return func(c *domainConfig) { c.sink = f }
}

// Domain is a fake remote XMPP domain: an s2s.Server for one domain on
// loopback, with a certificate from the Env's CA, SRV records in the
// Env's DNS, a policy (open federation unless Partners says otherwise),
// and users a test scripts. It is a scripted peer, not a server: it keeps
// no roster and aggregates no presence; every stanza it receives is
// recorded as it came (NextRaw), and those for its users decoded with
// translate.Decode (User.Next) or, for error stanzas, recorded with their
// condition (User.NextError).
//
// What it answers by itself: XEP-0199 pings to the domain get a result
// (from s2s, XEP-0199 §4.2: they are not recorded); other iq get and set
// requests to the domain get service-unavailable
// (RFC 6120 §8.4); a stanza to an address without a User gets
// service-unavailable from the policy (RFC 6121 §8.5.2.1); a stanza
// translate.Decode refuses (groupchat, Jingle, an iq to a user...) gets
// the stanza error Decode gives (RFC 6120 §8.3). Its methods may be
// called concurrently.
type Domain struct {
	env  *Env
	name string // normalized domainpart
	srv  *s2s.Server
	pol  *policy.Policy
	dir  *policy.UserTable
	pm   translate.PresenceMapper
	addr string
	// send hands a stanza to the s2s pool (srv.Send); the fuzz test
	// replaces it to run the handler without a network.
	send func(ctx context.Context, st *s2s.Stanza) error
	// sink, if set, takes the decoded stanzas for users (Sink).
	sink func(*User, translate.Stanza)
	done chan error // Serve's result

	raw  recorder[*s2s.Stanza]
	errs recorder[StanzaError]

	closeOnce sync.Once
	mu        sync.Mutex
	closed    bool
	users     map[string]*User    // by normalized localpart
	pings     map[string]*pending // by iq id
}

// pending is a ping the Domain sent and waits an answer for.
type pending struct {
	to     jid.JID
	answer chan error // buffered: one answer
}

// NewDomain starts a fake remote domain name in the Env: it listens on
// 127.0.0.1, publishes its SRV record and host in the Env's DNS, and
// serves with a certificate for name from the Env's CA. By default it
// federates with every domain (open federation) with the policy's default
// settings (TLS and SASL EXTERNAL required) and its users may use
// federation. Env.Close closes it; Domain.Close closes it earlier. It
// panics if name is not a valid domain or the domain cannot start.
func (e *Env) NewDomain(name string, opts ...DomainOption) *Domain {
	var cfg domainConfig
	for _, o := range opts {
		o(&cfg)
	}
	dj, err := jid.New("", name, "")
	if err != nil {
		panic(fmt.Sprintf("federationtest: NewDomain(%q): %v", name, err))
	}
	d := &Domain{
		env:   e,
		name:  dj.Domainpart(),
		dir:   new(policy.UserTable),
		pm:    translate.NewPresenceTable(),
		done:  make(chan error, 1),
		users: make(map[string]*User),
		pings: make(map[string]*pending),
		sink:  cfg.sink,
	}
	d.pol = newPolicy(d.dir, cfg.partners, func(c *policy.Config) {
		for _, edit := range cfg.edits {
			edit(c)
		}
	})
	d.srv = &s2s.Server{
		Domains:   []string{d.name},
		TLSConfig: e.TLSConfig(d.name),
		Verify:    e.Verify(),
		Resolver:  e.Resolver(),
		Policy:    d.pol,
		Handler:   s2s.HandlerFunc(d.handle),
		Bounce:    d.bounce,
	}
	for _, c := range cfg.configure {
		c(d.srv)
	}
	d.send = d.srv.Send
	serve, listen := d.srv.Serve, e.Listen
	if cfg.directTLS {
		serve, listen = d.srv.ServeDirectTLS, e.ListenDirectTLS
	}
	l := listen(d.name)
	d.addr = l.Addr().String()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		panic("federationtest: NewDomain on a closed Env")
	}
	e.domains = append(e.domains, d)
	e.mu.Unlock()
	go func() { d.done <- serve(l) }()
	return d
}

// Name returns the domain's name (normalized: lower case).
func (d *Domain) Name() string { return d.name }

// Addr returns the address the domain listens on ("127.0.0.1:port").
func (d *Domain) Addr() string { return d.addr }

// Server returns the domain's s2s.Server, for Stats.
func (d *Domain) Server() *s2s.Server { return d.srv }

// Policy returns the domain's policy; Apply changes it while it runs.
func (d *Domain) Policy() *policy.Policy { return d.pol }

// User returns the domain's user local (creating it on first use): from
// then on, stanzas to local@domain (any resource) are recorded for it
// instead of being refused. It panics if local is not a valid localpart.
func (d *Domain) User(local string) *User {
	j, err := jid.New(local, d.name, resource)
	if err != nil {
		panic(fmt.Sprintf("federationtest: User(%q): %v", local, err))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if u := d.users[j.Localpart()]; u != nil {
		return u
	}
	u := &User{d: d, jid: j}
	if d.closed {
		u.got.close()
		u.errs.close()
	}
	d.users[j.Localpart()] = u
	d.dir.Set(j.Bare(), policy.User{})
	return u
}

// user returns the User with localpart local, or nil.
func (d *Domain) user(local string) *User {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.users[local]
}

// NextRaw returns the next stanza the domain received (every stanza that
// reached it, to its users or to the domain itself, in order of arrival),
// waiting until ctx ends or the domain is closed (ErrClosed). Stanzas the
// policy refused before delivery (to an unknown user, from a refused
// domain) never reach it, nor, with Sink, those for its users that are not
// errors.
func (d *Domain) NextRaw(ctx context.Context) (*s2s.Stanza, error) { return d.raw.next(ctx) }

// Raw returns every stanza received so far, read by NextRaw or not.
func (d *Domain) Raw() []*s2s.Stanza { return d.raw.all() }

// NextError returns the next stanza error about a stanza the domain itself
// sent (not one of its users): an error reply to the domain, or a bounce
// by its s2s pool, when no Ping was waiting for it.
func (d *Domain) NextError(ctx context.Context) (StanzaError, error) { return d.errs.next(ctx) }

// Ping sends an XEP-0199 ping from the domain to to (a domain or a full
// JID) and waits for the answer: nil for a result, the stanza.Error of an
// error reply or of a bounce by the domain's pool (remote-server-not-found
// ...), ctx's error, ErrClosed, or the error of s2s.Server.Send (a
// *policy.Denial when the domain's policy refuses to).
func (d *Domain) Ping(ctx context.Context, to string) error {
	target, err := translate.ParseAddress(to)
	if err != nil {
		return err
	}
	id := rand.Text()
	p := &pending{to: target, answer: make(chan error, 1)}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	d.pings[id] = p
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.pings, id)
		d.mu.Unlock()
	}()
	raw, err := encodeIQ("get", id, d.name, target.String(), xml.Name{Space: nsPing, Local: "ping"})
	if err != nil {
		return err
	}
	st, err := s2s.ParseStanza(raw)
	if err != nil {
		return err
	}
	if err := d.send(ctx, st); err != nil {
		return err
	}
	select {
	case err := <-p.answer:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// answerPing ends the ping id when from is the address it was sent to
// (RFC 6120 §8.2.3: the response comes from the requested entity), and
// reports whether a ping was waiting.
func (d *Domain) answerPing(id string, from jid.JID, err error) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.pings[id]
	if p == nil || !p.to.Equal(from) {
		return false
	}
	delete(d.pings, id)
	p.answer <- err
	return true
}

// Close stops the domain at once (its streams end, stanzas it queued are
// bounced) and waits for its goroutines. Next methods then return what
// was recorded, then ErrClosed. It is safe to call more than once.
func (d *Domain) Close() {
	d.closeOnce.Do(func() {
		_ = d.srv.Close()
		<-d.done // ErrServerClosed, or the accept error that stopped it earlier
		d.mu.Lock()
		d.closed = true
		users := make([]*User, 0, len(d.users))
		for _, u := range d.users {
			users = append(users, u)
		}
		for id, p := range d.pings {
			p.answer <- ErrClosed
			delete(d.pings, id)
		}
		d.mu.Unlock()
		d.raw.close()
		d.errs.close()
		for _, u := range users {
			u.got.close()
			u.errs.close()
		}
	})
}

// handle is the domain's s2s.Handler: it records st and answers what a
// server answers by itself.
func (d *Domain) handle(ctx context.Context, st *s2s.Stanza) error {
	if d.sink == nil || st.To.Localpart() == "" || st.Type == "error" {
		d.raw.add(st)
	}
	if st.To.Localpart() == "" {
		return d.handleServer(ctx, st)
	}
	u := d.user(st.To.Localpart())
	if st.Type == "error" {
		// Recorded, never answered (RFC 6120 §8.3.1), even for a user the
		// domain does not know.
		if u == nil {
			d.errs.add(remoteError(st))
		} else {
			u.errs.add(remoteError(st))
		}
		return nil
	}
	if u == nil {
		// The policy's directory refuses unknown users before the
		// handler; this is a stanza for a user the policy knows but the
		// domain does not (a ConfigureServer change): RFC 6121 §8.5.2.1.
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	v, err := translate.Decode(st.Raw(), d.pm)
	if errors.Is(err, translate.ErrIgnore) {
		// A headline message or an iq result: kept in Raw only, never
		// answered (RFC 6120 §8.2.3, RFC 6121 §8.5.3.2.1).
		return nil
	}
	if err != nil {
		// A stanza.Error: s2s sends it back to the sender (RFC 6120 §8.3).
		return err
	}
	if d.sink != nil {
		d.sink(u, v)
		return nil
	}
	u.got.add(v)
	return nil
}

// handleServer handles a stanza addressed to the domain itself.
func (d *Domain) handleServer(ctx context.Context, st *s2s.Stanza) error {
	switch {
	case st.Kind == "iq" && (st.Type == "get" || st.Type == "set"):
		if st.ID == "" {
			// RFC 6120 §8.2.3: an iq carries an id.
			return stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
		}
		child, n, err := children(st)
		if err != nil || n != 1 {
			// RFC 6120 §8.2.3: a get or set holds exactly one child.
			return stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
		}
		if st.Type == "get" && child == (xml.Name{Space: nsPing, Local: "ping"}) {
			// XEP-0199 §6: a server that supports ping answers with an
			// empty result.
			reply, err := st.ResultReply(nil)
			if err != nil {
				return err
			}
			return d.send(ctx, reply)
		}
		// RFC 6120 §8.4: a namespace the server does not understand.
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	case st.Kind == "iq" && st.Type == "result":
		if !d.answerPing(st.ID, st.From, nil) {
			return nil // an unexpected result: in Raw, never answered (RFC 6120 §8.2.3)
		}
	case st.Type == "error":
		se := remoteError(st)
		if st.Kind != "iq" || !d.answerPing(st.ID, st.From, se.Err) {
			d.errs.add(se)
		}
	case st.Kind == "iq":
		// RFC 6120 §8.2.3: type is get, set, result or error.
		return stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest}
	}
	// A message or presence to the domain itself: recorded in Raw, not
	// answered (the domain has no service behind it).
	return nil
}

// bounce is the domain's s2s Bounce: a stanza its pool could not deliver
// goes to its sender's errors (or to a waiting Ping).
func (d *Domain) bounce(_ context.Context, st *s2s.Stanza, err stanza.Error) {
	se := StanzaError{
		Kind: st.Kind, ID: st.ID, From: st.To, To: st.From,
		Err: err, Local: true, Raw: st.Raw(),
	}
	if st.From.Localpart() == "" {
		if st.Kind != "iq" || !d.answerPing(st.ID, st.To, err) {
			d.errs.add(se)
		}
		return
	}
	if u := d.user(st.From.Localpart()); u != nil {
		u.errs.add(se)
		return
	}
	d.errs.add(se)
}

// StanzaError is a stanza error a Domain's user (or the domain) got for a
// stanza it sent: an error reply from the remote side (RFC 6120 §8.3), or
// a bounce by the domain's own s2s pool (Local: the stanza never reached
// the remote server, or the policy refused it after Send).
type StanzaError struct {
	// Kind is "message", "presence" or "iq"; ID is the stanza's id.
	Kind, ID string
	// From is the address that was written to (the error reply's sender);
	// To is the user (or domain) who wrote.
	From, To jid.JID
	// Err is the error: its Condition (stanza.ServiceUnavailable...), Type
	// and Text. An error reply without a readable <error/> element has
	// the condition undefined-condition.
	Err stanza.Error
	// Local reports a bounce by the domain's own pool rather than an error
	// reply received.
	Local bool
	// Raw is the error reply's XML, or for a bounce the stanza that was
	// not delivered.
	Raw []byte
}

// remoteError reads the error reply st (type='error'): the <error/> child
// in jabber:server, decoded by mellium's stanza.Error.
func remoteError(st *s2s.Stanza) StanzaError {
	se := StanzaError{Kind: st.Kind, ID: st.ID, From: st.From, To: st.To, Raw: st.Raw()}
	se.Err = parseError(st.Raw())
	return se
}

// parseError returns the <error/> child of the stanza raw (RFC 6120
// §8.3.2), or undefined-condition when it has none that can be read.
func parseError(raw []byte) stanza.Error {
	undefined := stanza.Error{Type: stanza.Cancel, Condition: stanza.UndefinedCondition}
	dec := xml.NewDecoder(bytes.NewReader(raw))
	depth := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return undefined
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 && t.Name.Local == "error" && (t.Name.Space == nsServer || t.Name.Space == "") {
				var e stanza.Error
				if err := dec.DecodeElement(&e, &t); err != nil || e.Condition == "" {
					return undefined
				}
				return e
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				return undefined
			}
		}
	}
}

// children returns the name of the first child element of st and how many
// child elements it has.
func children(st *s2s.Stanza) (xml.Name, int, error) {
	r := st.TokenReader()
	var first xml.Name
	n, depth := 0, 0
	for {
		tok, err := r.Token()
		if err != nil {
			return first, n, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				if n == 0 {
					first = t.Name
				}
				n++
			}
		case xml.EndElement:
			depth--
			if depth == 0 {
				return first, n, nil
			}
		}
	}
}

// encodeIQ returns <iq type id from to> in jabber:server, holding an empty
// child element named child (none when child is zero). Values are escaped
// by encoding/xml.
func encodeIQ(typ, id, from, to string, child xml.Name) ([]byte, error) {
	var buf bytes.Buffer
	enc := xml.NewEncoder(&buf)
	start := xml.StartElement{Name: xml.Name{Local: "iq"}, Attr: []xml.Attr{
		{Name: xml.Name{Local: "xmlns"}, Value: nsServer},
		{Name: xml.Name{Local: "type"}, Value: typ},
		{Name: xml.Name{Local: "id"}, Value: id},
		{Name: xml.Name{Local: "from"}, Value: from},
		{Name: xml.Name{Local: "to"}, Value: to},
	}}
	toks := []xml.Token{start}
	if child != (xml.Name{}) {
		c := xml.StartElement{Name: xml.Name{Local: child.Local}, Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: child.Space}}}
		toks = append(toks, c, c.End())
	}
	toks = append(toks, start.End())
	for _, t := range toks {
		if err := enc.EncodeToken(t); err != nil {
			return nil, err
		}
	}
	if err := enc.Flush(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
