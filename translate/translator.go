package translate

import (
	"cmp"
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/internal/clock"
	"github.com/xmppfed/xmppfed/policy"
)

// Defaults and bounds of the Translator.
const (
	// defaultRefreshInterval is Lync's SubscriptionRefreshInterval
	// (28800 s), REFERENCE §5.5 #54.
	defaultRefreshInterval = 8 * time.Hour
	// defaultMaxMessageBytes is REFERENCE §5.7 #77's default.
	defaultMaxMessageBytes = 64 << 10
	// defaultMaxPairs bounds the conversation and watcher-refresh maps:
	// beyond it the oldest entry is forgotten.
	defaultMaxPairs = 100000
	// maxResources bounds the resources kept per remote contact: beyond
	// it the resource updated longest ago is forgotten.
	maxResources = 64
)

// Errors for a Translator whose required fields are not set.
var (
	errNoHost   = errors.New("translate: Translator.Host is nil")
	errNoRoster = errors.New("translate: Translator.Roster is nil")
	errNoGate   = errors.New("translate: Translator.Gate is nil")
	// errInternal stands for a failure whose text must not leave the
	// server: StanzaError makes it internal-server-error.
	errInternal = errors.New("translate: internal failure")
)

// pairKey names a (local user, remote contact) pair by their bare JIDs.
type pairKey struct{ local, remote string }

func pairOf(local, remote jid.JID) pairKey {
	return pairKey{local.Bare().String(), remote.Bare().String()}
}

// state is the Translator's run-time state. Its zero value is set up by
// init on first use.
type state struct {
	mu      sync.Mutex
	inited  bool
	clock   clock.Clock // nil until init: clock.Real
	started time.Time   // when the Translator was first used
	seq     uint64      // orders resource updates
	// contacts holds the presence of remote contacts, per pair: only
	// pairs whose local user sees the contact, so the roster bounds it.
	contacts map[pairKey]*contact
	// convs maps a pair to the remote full JID that last wrote (RFC 6121
	// §5.1).
	convs lru[jid.JID]
	// refreshed maps a watcher pair to when the watcher last refreshed
	// its subscription (REFERENCE §5.5 #54).
	refreshed lru[time.Time]
	// locks serialize the read-modify-write of one pair's subscription
	// state.
	locks map[pairKey]*pairLock
	// maxPairs bounds convs and refreshed (0: defaultMaxPairs).
	maxPairs int
	// keys remembers the last few pair keys built, so that the messages
	// of a conversation do not build the same strings every time.
	keys pairKeys
}

// pairKeys is a small cache of pairOf; it belongs to the state (s.mu
// held).
type pairKeys struct {
	local, remote [pairKeysSize]jid.JID // bare
	keys          [pairKeysSize]pairKey
	next          int
}

// pairKeysSize is small: a few conversations at once hit it.
const pairKeysSize = 4

// of returns pairOf(local, remote), from the cache when it has it.
func (c *pairKeys) of(local, remote jid.JID) pairKey {
	local, remote = local.Bare(), remote.Bare()
	for i := range c.keys {
		if c.keys[i].local != "" && c.local[i].Equal(local) && c.remote[i].Equal(remote) {
			return c.keys[i]
		}
	}
	k := pairOf(local, remote)
	c.local[c.next], c.remote[c.next], c.keys[c.next] = local, remote, k
	c.next = (c.next + 1) % pairKeysSize
	return k
}

// contact is what the Translator knows of one remote contact's presence,
// as one local user sees it.
type contact struct {
	local, remote jid.JID // bare
	resources     map[string]resource
	// told is the aggregate the host was last told (nil: nothing yet).
	told *Presence
}

// resource is one remote resource's last presence.
type resource struct {
	p   Presence
	seq uint64 // larger is more recent
}

type pairLock struct {
	mu   sync.Mutex
	refs int
}

// init sets the state up once; s.mu must be held.
func (s *state) init() {
	if s.inited {
		return
	}
	s.inited = true
	s.clock = clock.Or(s.clock)
	s.started = s.clock.Now()
	s.contacts = make(map[pairKey]*contact)
	s.locks = make(map[pairKey]*pairLock)
	n := cmp.Or(s.maxPairs, defaultMaxPairs)
	s.convs.max, s.refreshed.max = n, n
}

// ready checks the required fields and sets the state up.
func (t *Translator) ready() error {
	var errs []error
	if t.Host == nil {
		errs = append(errs, errNoHost)
	}
	if t.Roster == nil {
		errs = append(errs, errNoRoster)
	}
	if t.Gate == nil {
		errs = append(errs, errNoGate)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	t.st.mu.Lock()
	t.st.init()
	t.st.mu.Unlock()
	return nil
}

// logs reports whether a record at level would be written (never without
// a Logger), so that a hot path builds its attributes only then.
func (t *Translator) logs(ctx context.Context, level slog.Level) bool {
	return t.Logger != nil && t.Logger.Enabled(ctx, level)
}

func (t *Translator) log() *slog.Logger {
	if t.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return t.Logger
}

func (t *Translator) maxMessage() int {
	if t.MaxMessageBytes <= 0 {
		return defaultMaxMessageBytes
	}
	return t.MaxMessageBytes
}

// lockPair serializes subscription processing for one pair; call the
// function it returns to release. It is never held while the Host is
// called, so a Host may call the Translator back from its methods.
func (t *Translator) lockPair(k pairKey) (release func()) {
	t.st.mu.Lock()
	l := t.st.locks[k]
	if l == nil {
		l = new(pairLock)
		t.st.locks[k] = l
	}
	l.refs++
	t.st.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		t.st.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(t.st.locks, k)
		}
		t.st.mu.Unlock()
	}
}

// authorized reports whether the local user has expressed an intent
// about the contact, for policy.Request.Authorized on messages and
// subscription requests: every state but None and None + Pending In (in
// those the contact alone asked for something; in every other the user
// asked to see the contact or allowed the contact to see the user).
func authorized(s SubState) bool { return s != None && s != NonePendingIn }

// sameDomain compares a JID's domainpart with a domain given by a caller,
// which is normalized first as a JID domainpart would be.
func sameDomain(domainpart, domain string) bool {
	d := strings.TrimSuffix(domain, ".")
	if j, err := jid.Parse(d); err == nil && j.Localpart() == "" && j.Resourcepart() == "" {
		d = j.Domainpart()
	}
	return domainpart == d || strings.EqualFold(domainpart, d)
}

// ---- Inbound ----

// Inbound translates one stanza a remote server sent to a local user or
// domain and acts on it: delivers to the Host what the rules allow,
// updates subscription states, answers probes. It returns the stanzas to
// send back (error replies, subscribed/unsubscribed answers, presence for
// a probe), each ready for s2s.ParseStanza. It returns an error only when
// it cannot even build a reply (raw is not a stanza at all), or when the
// Translator lacks a required field (the error names it).
//
// The rules, in order of the stanza kinds:
//
//   - A message larger than MaxMessageBytes is refused with
//     policy-violation, never cut (REFERENCE §5.7 #77). Otherwise the Gate
//     decides (ActMessage; Authorized when the roster state is anything but
//     None and None + Pending In, that is when the local user asked to see
//     the sender or allowed the sender to see them). A delivered message
//     makes its sender's full JID the one replies go to (RFC 6121 §5.1); a
//     Host error goes back as the stanza error StanzaError gives.
//   - Presence is taken only from contacts the local user sees (To, To +
//     Pending In, Both; see the note below), aggregated over the
//     contact's resources and delivered only when the aggregate changed
//     (REFERENCE §5.8 #92).
//   - Subscription requests and answers go through SubState.Inbound, the
//     Gate (for subscribe), and the Host (REFERENCE §5.6 #65-67, §5.8
//     #87).
//   - A probe is answered with the local user's current presence for an
//     authorized watcher, and with unsubscribed for anyone else (RFC 6121
//     §4.3.2, REFERENCE §5.6 #70).
//
// Aggregation: the resource with the highest priority wins (negative
// priorities count too); on a tie, the most available one, in the order
// of Lync's availability numbers (REFERENCE §4.4): Available, Idle, Busy,
// DoNotDisturb, BeRightBack, Away, then Unknown; on a further tie, the
// resource heard from last. Unavailable presence from the last resource
// makes the aggregate Offline.
//
// Presence from a remote user the local user does not see is dropped (and
// logged at Debug level): RFC 6121 §4.6.4 would deliver it as directed
// presence, but the host's model only knows its contacts' presence, and a
// stranger must not be able to push a presence into the host. As for
// presence a server does not deliver (RFC 6121 §8.5.2.2.2), no error goes
// back.
//
// Inbound may be called concurrently, also from within a Host method (the
// Translator holds no lock while it calls the Host). Presence of one
// contact arriving on two goroutines at once may reach the Host in either
// order; a stream's stanzas, handled in order, arrive in order.
func (t *Translator) Inbound(ctx context.Context, raw []byte) (out [][]byte, err error) {
	if err := t.ready(); err != nil {
		return nil, err
	}
	v, err := Decode(raw, t.Presence)
	return t.inbound(ctx, raw, v, err)
}

// InboundFramed is Inbound for a stanza the s2s layer has already read and
// checked: raw, from and to are an s2s.Stanza's Raw, From and To, decoded
// with DecodeFramed (same contract: bytes that internal/wire or
// s2s.ParseStanza accepted; anything else goes to Inbound).
func (t *Translator) InboundFramed(ctx context.Context, raw []byte, from, to jid.JID) (out [][]byte, err error) {
	if err := t.ready(); err != nil {
		return nil, err
	}
	v, err := DecodeFramed(raw, from, to, t.Presence)
	return t.inbound(ctx, raw, v, err)
}

// inbound is Inbound after the decoding of raw into v (or err).
func (t *Translator) inbound(ctx context.Context, raw []byte, v Stanza, err error) ([][]byte, error) {
	if err != nil {
		if errors.Is(err, ErrIgnore) {
			t.log().LogAttrs(ctx, slog.LevelDebug, "translate: inbound stanza ignored", slog.Int("size", len(raw)), slog.Any("err", err))
			return nil, nil
		}
		t.log().LogAttrs(ctx, slog.LevelDebug, "translate: inbound stanza refused", slog.Int("size", len(raw)), slog.Any("err", err))
		return t.bounce(raw, StanzaError(err))
	}
	switch v := v.(type) {
	case *Message:
		return t.inMessage(ctx, raw, v)
	case *Presence:
		return t.inPresence(ctx, raw, v)
	case *Subscription:
		if v.Action == Subscribe {
			return t.inSubscribe(ctx, raw, v)
		}
		return t.inSubscription(ctx, raw, v)
	case *Probe:
		return t.inProbe(ctx, raw, v)
	}
	// Decode returns only the four kinds; anything else is answered
	// rather than dropped.
	return t.bounce(raw, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
}

// bounce returns the error reply to raw (RFC 6120 §8.3).
func (t *Translator) bounce(raw []byte, e stanza.Error) ([][]byte, error) {
	reply, err := ErrorReply(raw, e)
	if errors.Is(err, ErrIgnore) {
		return nil, nil // an error stanza is never answered (RFC 6120 §8.3.1)
	}
	if err != nil {
		return nil, err
	}
	return [][]byte{reply}, nil
}

// internal logs a failure of the Roster, Gate or Host that the remote side
// must not see, and bounces raw with internal-server-error (STYLE §2.10).
func (t *Translator) internal(ctx context.Context, raw []byte, what string, err error) ([][]byte, error) {
	t.log().LogAttrs(ctx, slog.LevelWarn, "translate: "+what+" failed", slog.Any("err", err))
	return t.bounce(raw, StanzaError(errInternal))
}

// refusal returns the stanza error for a Deny decision.
func refusal(d policy.Decision) stanza.Error {
	if d.Err != nil {
		return StanzaError(d.Err)
	}
	return stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden}
}

func (t *Translator) inMessage(ctx context.Context, raw []byte, m *Message) ([][]byte, error) {
	local, remote := m.To.Bare(), m.From
	// The attributes are built only for a record that is written: this is
	// the path of every inbound message.
	logMsg := func(level slog.Level, msg string, extra ...slog.Attr) {
		if !t.logs(ctx, level) {
			return
		}
		attrs := []slog.Attr{
			slog.String("from", remote.String()), slog.String("to", local.String()),
			slog.String("id", m.ID), slog.Int("size", len(raw)),
		}
		if t.LogBodies {
			attrs = append(attrs, slog.String("body", m.Body))
		}
		t.Logger.LogAttrs(ctx, level, msg, append(attrs, extra...)...)
	}
	if len(raw) > t.maxMessage() {
		logMsg(slog.LevelDebug, "translate: inbound message too large")
		return t.bounce(raw, StanzaError(ErrTooLarge))
	}
	st, err := t.Roster.State(ctx, local, remote.Bare())
	if err != nil {
		return t.internal(ctx, raw, "Roster.State", err)
	}
	dec, err := t.Gate.Inbound(ctx, policy.Request{Action: policy.ActMessage, From: remote, To: local, Authorized: authorized(st)})
	if err != nil {
		return t.internal(ctx, raw, "Gate.Inbound", err)
	}
	if dec.Verdict != policy.Deliver {
		logMsg(slog.LevelDebug, "translate: inbound message refused by policy", slog.Any("err", dec.Err))
		return t.bounce(raw, refusal(dec))
	}
	// m is the Translator's own (decoded from raw): the Host gets it.
	m.To = local
	if err := t.Host.DeliverMessage(ctx, m); err != nil {
		se := StanzaError(err)
		level := slog.LevelDebug
		if se.Condition == stanza.InternalServerError {
			level = slog.LevelWarn
		}
		logMsg(level, "translate: Host.DeliverMessage failed", slog.Any("err", err))
		return t.bounce(raw, se)
	}
	t.st.mu.Lock()
	t.st.convs.set(t.st.keys.of(local, remote), remote)
	t.st.mu.Unlock()
	logMsg(slog.LevelDebug, "translate: message delivered")
	return nil, nil
}

func (t *Translator) inPresence(ctx context.Context, raw []byte, p *Presence) ([][]byte, error) {
	local, remote := p.To.Bare(), p.From.Bare()
	st, err := t.Roster.State(ctx, local, remote)
	if err != nil {
		return t.internal(ctx, raw, "Roster.State", err)
	}
	k := pairOf(local, remote)
	available := p.Availability != Offline
	if available && st.ContactSees() {
		t.refresh(k) // REFERENCE §5.5 #54: an available presence refreshes the watcher
	}
	if !available {
		// RFC 6121 §5.1: unavailable presence from the resource a
		// conversation is bound to unbinds it.
		t.st.mu.Lock()
		if full, ok := t.st.convs.get(k); ok && full.Equal(p.From) {
			t.st.convs.delete(k)
		}
		t.st.mu.Unlock()
	}
	if !st.SeesContact() {
		t.log().LogAttrs(ctx, slog.LevelDebug, "translate: presence from a non-contact dropped",
			slog.String("from", p.From.String()), slog.String("to", local.String()), slog.String("state", st.String()))
		return nil, nil
	}
	agg, changed := t.aggregate(local, remote, p)
	if !changed {
		return nil, nil
	}
	if err := t.Host.DeliverPresence(ctx, agg); err != nil {
		// The host was not told: forget what it was told, so that the
		// next presence is delivered again.
		t.st.mu.Lock()
		if c := t.st.contacts[k]; c != nil {
			c.told = nil
		}
		t.st.mu.Unlock()
		t.log().LogAttrs(ctx, slog.LevelWarn, "translate: Host.DeliverPresence failed",
			slog.String("from", remote.String()), slog.String("to", local.String()), slog.Any("err", err))
	}
	return nil, nil
}

// availabilityRank orders states from the most available (REFERENCE §4.4:
// Lync's availability numbers, lowest first).
func availabilityRank(a Availability) int {
	switch a {
	case Available:
		return 0
	case Idle:
		return 1
	case Busy:
		return 2
	case DoNotDisturb:
		return 3
	case BeRightBack:
		return 4
	case Away:
		return 5
	}
	return 6
}

// aggregate records p from one of remote's resources and returns the
// aggregated presence, and whether it differs from what the host was last
// told (which it then becomes).
func (t *Translator) aggregate(local, remote jid.JID, p *Presence) (*Presence, bool) {
	k := pairOf(local, remote)
	t.st.mu.Lock()
	defer t.st.mu.Unlock()
	c := t.st.contacts[k]
	if c == nil {
		c = &contact{local: local, remote: remote, resources: make(map[string]resource)}
		t.st.contacts[k] = c
	}
	res := p.From.Resourcepart()
	if p.Availability == Offline {
		delete(c.resources, res)
	} else {
		t.st.seq++
		q := *p
		c.resources[res] = resource{p: q, seq: t.st.seq}
		for len(c.resources) > maxResources {
			oldest, first := "", true
			var least uint64
			for r, v := range c.resources {
				if first || v.seq < least {
					oldest, least, first = r, v.seq, false
				}
			}
			delete(c.resources, oldest)
		}
	}
	var agg Presence
	if len(c.resources) == 0 {
		agg = Presence{Availability: Offline, Note: p.Note, Lang: p.Lang}
	} else {
		var best resource
		first := true
		for _, r := range c.resources {
			if first || better(r, best) {
				best, first = r, false
			}
		}
		agg = best.p
	}
	agg.From, agg.To = remote, local
	if c.told != nil && samePresence(c.told, &agg) {
		return nil, false
	}
	told := agg
	c.told = &told
	return &agg, true
}

// better reports whether resource a wins over b: higher priority, then
// more available, then more recent.
func better(a, b resource) bool {
	if a.p.Priority != b.p.Priority {
		return a.p.Priority > b.p.Priority
	}
	if ra, rb := availabilityRank(a.p.Availability), availabilityRank(b.p.Availability); ra != rb {
		return ra < rb
	}
	return a.seq > b.seq
}

func samePresence(a, b *Presence) bool {
	return a.From.Equal(b.From) && a.To.Equal(b.To) && a.Availability == b.Availability &&
		a.Note == b.Note && a.Lang == b.Lang && a.IdleSince.Equal(b.IdleSince) && a.Priority == b.Priority
}

// refresh records that the watcher of pair k refreshed its subscription.
func (t *Translator) refresh(k pairKey) {
	t.st.mu.Lock()
	defer t.st.mu.Unlock()
	t.st.refreshed.set(k, t.st.clock.Now())
}

// fresh reports whether the watcher of pair k has refreshed its
// subscription within RefreshInterval; one never heard from since the
// Translator started counts as refreshed at the start.
func (t *Translator) fresh(k pairKey) bool {
	if t.RefreshInterval < 0 {
		return true
	}
	interval := cmp.Or(t.RefreshInterval, defaultRefreshInterval)
	t.st.mu.Lock()
	defer t.st.mu.Unlock()
	last, ok := t.st.refreshed.get(k)
	if !ok {
		last = t.st.started
	}
	return t.st.clock.Now().Sub(last) <= interval
}

// forgetContact drops what is known of remote's presence for local and
// reports whether the host had been told anything.
func (t *Translator) forgetContact(k pairKey) bool {
	t.st.mu.Lock()
	defer t.st.mu.Unlock()
	c := t.st.contacts[k]
	delete(t.st.contacts, k)
	return c != nil && c.told != nil
}

// inSubscribe handles a subscription request (RFC 6121 §3.1.3, REFERENCE
// §5.6 #65-67).
func (t *Translator) inSubscribe(ctx context.Context, raw []byte, s *Subscription) ([][]byte, error) {
	local, remote := s.To.Bare(), s.From.Bare()
	k := pairOf(local, remote)
	attrs := []slog.Attr{slog.String("from", remote.String()), slog.String("to", local.String())}
	release := t.lockPair(k)
	st, err := t.Roster.State(ctx, local, remote)
	if err != nil {
		release()
		return t.internal(ctx, raw, "Roster.State", err)
	}
	if reply, ok := st.AutoReply(Subscribe); ok {
		// RFC 6121 §3.1.3: the contact already sees the user; the
		// server answers subscribed itself.
		release()
		t.refresh(k)
		return raws(t.encode(&Subscription{From: local, To: remote, ID: s.ID, Action: reply}))
	}
	pending, deliver := st.Inbound(Subscribe)
	if !deliver {
		// A.3.1: a request already pending is not delivered again.
		release()
		t.log().LogAttrs(ctx, slog.LevelDebug, "translate: repeated subscription request ignored", append(attrs, slog.String("state", st.String()))...)
		return nil, nil
	}
	dec, err := t.Gate.Inbound(ctx, policy.Request{Action: policy.ActSubscribe, From: s.From, To: local, Authorized: authorized(st)})
	if err != nil {
		release()
		return t.internal(ctx, raw, "Gate.Inbound", err)
	}
	switch dec.Verdict {
	case policy.Deny:
		release()
		t.log().LogAttrs(ctx, slog.LevelDebug, "translate: subscription request refused by policy", append(attrs, slog.Any("err", dec.Err))...)
		// The state is unchanged; the answer is unsubscribed, and no
		// presence (REFERENCE §5.6 #67).
		return raws(t.encode(&Subscription{From: local, To: remote, ID: s.ID, Action: Unsubscribed}))
	case policy.AutoApprove:
		// The request arrives (A.3.1), and the server approves it for
		// the user at once (A.2.3).
		approved, _ := pending.Outbound(Subscribed)
		if err := t.Roster.SetState(ctx, local, remote, approved); err != nil {
			release()
			return t.internal(ctx, raw, "Roster.SetState", err)
		}
		release()
		note := &Subscription{From: remote, To: local, ID: s.ID, Action: Subscribe, AutoApproved: true}
		if err := t.Host.DeliverSubscription(ctx, note); err != nil {
			t.restore(ctx, k, local, remote, approved, st)
			return t.hostRefused(ctx, raw, "Host.DeliverSubscription", err)
		}
		t.refresh(k)
		out, err := raws(t.encode(&Subscription{From: local, To: remote, ID: s.ID, Action: Subscribed}))
		if err != nil {
			return nil, err
		}
		// RFC 6121 §3.1.5: after approving, the server sends the user's
		// current presence to the contact; the note only when the
		// policy allows it (REFERENCE §4.5, #89).
		if p, err := t.currentPresence(ctx, local, remote, dec.ShareNote); err != nil {
			t.log().LogAttrs(ctx, slog.LevelWarn, "translate: presence after approval not sent", append(attrs, slog.Any("err", err))...)
		} else {
			out = append(out, p.Raw)
		}
		t.log().LogAttrs(ctx, slog.LevelDebug, "translate: subscription request approved by policy", attrs...)
		return out, nil
	}
	// Hold (and Deliver, which the policy does not give for a
	// subscription): the request waits for the user (REFERENCE §5.6
	// #67): nothing goes back yet.
	if err := t.Roster.SetState(ctx, local, remote, pending); err != nil {
		release()
		return t.internal(ctx, raw, "Roster.SetState", err)
	}
	release()
	if err := t.Host.DeliverSubscription(ctx, &Subscription{From: remote, To: local, ID: s.ID, Action: Subscribe}); err != nil {
		t.restore(ctx, k, local, remote, pending, st)
		return t.hostRefused(ctx, raw, "Host.DeliverSubscription", err)
	}
	t.log().LogAttrs(ctx, slog.LevelDebug, "translate: subscription request held for the user", attrs...)
	return nil, nil
}

// restore puts the pair's state back to old when it is still cur (the
// Host refused what changed it).
func (t *Translator) restore(ctx context.Context, k pairKey, local, remote jid.JID, cur, old SubState) {
	release := t.lockPair(k)
	defer release()
	if now, err := t.Roster.State(ctx, local, remote); err == nil && now == cur {
		if err := t.Roster.SetState(ctx, local, remote, old); err != nil {
			t.log().LogAttrs(ctx, slog.LevelWarn, "translate: Roster.SetState failed", slog.Any("err", err))
		}
	}
}

// hostRefused bounces raw with the stanza error for a Host error.
func (t *Translator) hostRefused(ctx context.Context, raw []byte, what string, err error) ([][]byte, error) {
	se := StanzaError(err)
	level := slog.LevelDebug
	if se.Condition == stanza.InternalServerError {
		level = slog.LevelWarn
	}
	t.log().LogAttrs(ctx, level, "translate: "+what+" failed", slog.Any("err", err))
	return t.bounce(raw, se)
}

// inSubscription handles subscribed, unsubscribe and unsubscribed from the
// contact (RFC 6121 §3.1.6, §3.2.3, §3.3.3; Appendix A.3.2-A.3.4;
// REFERENCE §5.8 #87).
func (t *Translator) inSubscription(ctx context.Context, raw []byte, s *Subscription) ([][]byte, error) {
	local, remote := s.To.Bare(), s.From.Bare()
	k := pairOf(local, remote)
	attrs := []slog.Attr{slog.String("from", remote.String()), slog.String("to", local.String()), slog.String("type", s.Action.String())}
	release := t.lockPair(k)
	st, err := t.Roster.State(ctx, local, remote)
	if err != nil {
		release()
		return t.internal(ctx, raw, "Roster.State", err)
	}
	next, deliver := st.Inbound(s.Action)
	if next != st {
		if err := t.Roster.SetState(ctx, local, remote, next); err != nil {
			release()
			return t.internal(ctx, raw, "Roster.SetState", err)
		}
	}
	release()
	if !deliver {
		t.log().LogAttrs(ctx, slog.LevelDebug, "translate: subscription stanza not delivered (RFC 6121 Appendix A.3)", append(attrs, slog.String("state", st.String()))...)
		return nil, nil
	}
	if err := t.Host.DeliverSubscription(ctx, &Subscription{From: remote, To: local, ID: s.ID, Action: s.Action}); err != nil {
		t.log().LogAttrs(ctx, slog.LevelWarn, "translate: Host.DeliverSubscription failed", append(attrs, slog.Any("err", err))...)
	}
	if st.ContactSees() && !next.ContactSees() {
		// The contact stopped watching: nothing more to refresh.
		t.st.mu.Lock()
		t.st.refreshed.delete(k)
		t.st.mu.Unlock()
	}
	if st.SeesContact() && !next.SeesContact() {
		// RFC 6121 §3.2.3: the user's server sends the user unavailable
		// presence from all of the contact's resources.
		t.forgetContact(k)
		off := &Presence{From: remote, To: local, Availability: Offline}
		if err := t.Host.DeliverPresence(ctx, off); err != nil {
			t.log().LogAttrs(ctx, slog.LevelWarn, "translate: Host.DeliverPresence failed", append(attrs, slog.Any("err", err))...)
		}
	}
	return nil, nil
}

// inProbe answers a presence probe (RFC 6121 §4.3.2, REFERENCE §5.6 #70).
func (t *Translator) inProbe(ctx context.Context, raw []byte, pr *Probe) ([][]byte, error) {
	local, remote := pr.To.Bare(), pr.From
	st, err := t.Roster.State(ctx, local, remote.Bare())
	if err != nil {
		return t.internal(ctx, raw, "Roster.State", err)
	}
	dec, err := t.Gate.Inbound(ctx, policy.Request{Action: policy.ActProbe, From: remote, To: local, Authorized: st.ContactSees()})
	if err != nil {
		return t.internal(ctx, raw, "Gate.Inbound", err)
	}
	if dec.Verdict != policy.Deliver {
		// RFC 6121 §4.3.2: no presence for an entity not authorized;
		// unsubscribed at most, which carries no show or status.
		t.log().LogAttrs(ctx, slog.LevelDebug, "translate: probe refused",
			slog.String("from", remote.String()), slog.String("to", local.String()), slog.Any("err", dec.Err))
		return raws(t.encode(&Subscription{From: local, To: remote.Bare(), ID: pr.ID, Action: Unsubscribed}))
	}
	t.refresh(pairOf(local, remote)) // REFERENCE §5.5 #54: a probe refreshes the watcher
	p, err := t.currentPresence(ctx, local, remote, dec.ShareNote)
	if err != nil {
		return t.hostRefused(ctx, raw, "Host.CurrentPresence", err)
	}
	return [][]byte{p.Raw}, nil
}

// currentPresence encodes the local user's current presence for remote:
// Offline (and Unknown) as unavailable (RFC 6121 §4.3.2), the note only
// with shareNote.
func (t *Translator) currentPresence(ctx context.Context, local, remote jid.JID, shareNote bool) (Encoded, error) {
	cur, err := t.Host.CurrentPresence(ctx, local)
	if err != nil {
		return Encoded{}, err
	}
	var p Presence
	if cur != nil {
		p = *cur
	}
	if p.Availability == Unknown {
		p.Availability = Offline
	}
	p.From, p.To = local, remote
	return EncodeStanza(&p, t.Presence, shareNote)
}

// encode encodes v as the single stanza to send.
func (t *Translator) encode(v Stanza) ([]Encoded, error) {
	e, err := EncodeStanza(v, t.Presence, false)
	if err != nil {
		return nil, err
	}
	return []Encoded{e}, nil
}

// raws returns the bytes of each stanza in out.
func raws(out []Encoded, err error) ([][]byte, error) {
	if err != nil || out == nil {
		return nil, err
	}
	b := make([][]byte, len(out))
	for i := range out {
		b[i] = out[i].Raw
	}
	return b, nil
}

// ---- Outbound ----

// Outbound translates what a local user sends: an IM, a presence update
// (broadcast to every authorized watcher whose subscription is fresh, with
// the note only for Federated partners), a subscription request or answer
// (state machine), and returns the stanzas to send. An error (a
// *policy.Denial, ErrMalformedAddress, a field error) means nothing is
// sent.
//
//   - A message to a bare JID goes to the remote full JID that last wrote
//     in that conversation (RFC 6121 §5.1, REFERENCE §5.7 #73); an encoded
//     message larger than MaxMessageBytes is ErrTooLarge.
//   - A presence with no To goes to every watcher (Roster.Watchers) whose
//     subscription is fresh (REFERENCE §5.5 #54) and whom the Gate lets
//     see the user (a probe request, authorized: a watcher the Gate denies
//     is skipped), with the note only when the Gate says ShareNote (#89).
//     A watcher not heard from since the Translator was first used counts
//     as refreshed at that first use.
//     Offline goes to every watcher the Gate allows, fresh or not, so
//     that none is left showing the user available (#90). A presence with
//     a To is directed presence to that address only (RFC 6121 §4.6).
//   - A subscription stanza goes through SubState.Outbound: sent when
//     RFC 6121 Appendix A.2 says so, to the contact's bare JID (#86). An
//     approval (subscribed) also sends the user's current presence (RFC
//     6121 §3.1.5); a cancellation (unsubscribed) of a watcher sends it
//     unavailable presence (§3.2.2); an unsubscribe that loses sight of the
//     contact tells the Host its presence is Unknown.
//   - A probe is encoded and sent.
func (t *Translator) Outbound(ctx context.Context, v Stanza) (out [][]byte, err error) {
	return raws(t.OutboundEncoded(ctx, nil, v))
}

// OutboundEncoded is Outbound, appending each stanza to dst with its
// kind, addresses, id and type (what EncodeStanza gives), so that the
// caller can hand it to s2s without parsing it again (s2s.TrustedStanza),
// and keep the list in a buffer of its own. On an error it returns nil.
func (t *Translator) OutboundEncoded(ctx context.Context, dst []Encoded, v Stanza) ([]Encoded, error) {
	if err := t.ready(); err != nil {
		return nil, err
	}
	var out []Encoded
	var err error
	switch v := v.(type) {
	case *Message:
		if v != nil {
			return t.outMessage(ctx, dst, v)
		}
	case *Presence:
		if v != nil {
			out, err = t.outPresence(ctx, v)
			return appendEncoded(dst, out, err)
		}
	case *Subscription:
		if v != nil {
			out, err = t.outSubscription(ctx, v)
			return appendEncoded(dst, out, err)
		}
	case *Probe:
		if v != nil {
			out, err = t.encode(v)
			return appendEncoded(dst, out, err)
		}
	}
	return nil, fmt.Errorf("translate: Outbound: no stanza (%T)", v)
}

// appendEncoded returns dst with out appended, or nil and err.
func appendEncoded(dst, out []Encoded, err error) ([]Encoded, error) {
	if err != nil {
		return nil, err
	}
	return append(dst, out...), nil
}

func (t *Translator) outMessage(ctx context.Context, dst []Encoded, m *Message) ([]Encoded, error) {
	mm := *m
	if mm.To.Resourcepart() == "" {
		t.st.mu.Lock()
		if full, ok := t.st.convs.get(t.st.keys.of(mm.From, mm.To)); ok {
			mm.To = full
		}
		t.st.mu.Unlock()
	}
	e, err := EncodeStanza(&mm, t.Presence, false)
	if err != nil {
		return nil, err
	}
	if len(e.Raw) > t.maxMessage() {
		return nil, fmt.Errorf("%w: %d bytes encoded, at most %d", ErrTooLarge, len(e.Raw), t.maxMessage())
	}
	if t.logs(ctx, slog.LevelDebug) {
		attrs := []slog.Attr{slog.String("from", mm.From.String()), slog.String("to", mm.To.String()), slog.String("id", mm.ID), slog.Int("size", len(e.Raw))}
		if t.LogBodies {
			attrs = append(attrs, slog.String("body", mm.Body))
		}
		t.Logger.LogAttrs(ctx, slog.LevelDebug, "translate: outbound message", attrs...)
	}
	return append(dst, e), nil
}

// shareNote asks the Gate whether remote may see local's presence at all
// (a probe from an authorized watcher) and with the note.
func (t *Translator) shareNote(ctx context.Context, local, remote jid.JID) (policy.Decision, error) {
	return t.Gate.Inbound(ctx, policy.Request{Action: policy.ActProbe, From: remote, To: local, Authorized: true})
}

func (t *Translator) outPresence(ctx context.Context, p *Presence) ([]Encoded, error) {
	local := p.From.Bare()
	if p.To.String() != "" {
		// RFC 6121 §4.6: directed presence, to that address only.
		dec, err := t.shareNote(ctx, local, p.To)
		if err != nil {
			return nil, err
		}
		if dec.Verdict != policy.Deliver {
			if dec.Err != nil {
				return nil, dec.Err
			}
			return nil, errors.New("translate: presence refused by the Gate")
		}
		q := *p
		e, err := EncodeStanza(&q, t.Presence, dec.ShareNote)
		if err != nil {
			return nil, err
		}
		return []Encoded{e}, nil
	}
	watchers, err := t.Roster.Watchers(ctx, local)
	if err != nil {
		return nil, err
	}
	var out []Encoded
	for _, w := range watchers {
		w = w.Bare()
		if p.Availability != Offline && !t.fresh(pairOf(local, w)) {
			t.log().LogAttrs(ctx, slog.LevelDebug, "translate: watcher's subscription expired", slog.String("from", local.String()), slog.String("to", w.String()))
			continue
		}
		dec, err := t.shareNote(ctx, local, w)
		if err != nil {
			t.log().LogAttrs(ctx, slog.LevelWarn, "translate: Gate.Inbound failed", slog.String("to", w.String()), slog.Any("err", err))
			continue
		}
		if dec.Verdict != policy.Deliver {
			t.log().LogAttrs(ctx, slog.LevelDebug, "translate: watcher refused by policy", slog.String("to", w.String()), slog.Any("err", dec.Err))
			continue
		}
		q := *p
		q.From, q.To = local, w
		e, err := EncodeStanza(&q, t.Presence, dec.ShareNote)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func (t *Translator) outSubscription(ctx context.Context, s *Subscription) ([]Encoded, error) {
	local, remote := s.From.Bare(), s.To.Bare()
	if local.String() == "" {
		return nil, errors.New("translate: Subscription.From is empty")
	}
	if remote.String() == "" {
		return nil, errors.New("translate: Subscription.To is empty")
	}
	k := pairOf(local, remote)
	msg, err := EncodeStanza(&Subscription{From: local, To: remote, ID: s.ID, Action: s.Action}, t.Presence, false)
	if err != nil {
		return nil, err
	}
	release := t.lockPair(k)
	st, err := t.Roster.State(ctx, local, remote)
	if err != nil {
		release()
		return nil, err
	}
	next, send := st.Outbound(s.Action)
	if next != st {
		if err := t.Roster.SetState(ctx, local, remote, next); err != nil {
			release()
			return nil, err
		}
	}
	release()
	if !send {
		t.log().LogAttrs(ctx, slog.LevelDebug, "translate: subscription stanza not sent (RFC 6121 Appendix A.2)",
			slog.String("from", local.String()), slog.String("to", remote.String()), slog.String("type", s.Action.String()), slog.String("state", st.String()))
		return nil, nil
	}
	out := []Encoded{msg}
	switch {
	case s.Action == Subscribed && next.ContactSees():
		// RFC 6121 §3.1.5: the approval is followed by the user's
		// current presence.
		t.refresh(k)
		dec, err := t.shareNote(ctx, local, remote)
		if err == nil && dec.Verdict == policy.Deliver {
			if p, err := t.currentPresence(ctx, local, remote, dec.ShareNote); err == nil {
				out = append(out, p)
			} else {
				t.log().LogAttrs(ctx, slog.LevelWarn, "translate: presence after approval not sent", slog.Any("err", err))
			}
		}
	case st.ContactSees() && !next.ContactSees():
		// RFC 6121 §3.2.2: the contact no longer sees the user; it is
		// sent unavailable presence.
		t.st.mu.Lock()
		t.st.refreshed.delete(k)
		t.st.mu.Unlock()
		b, err := EncodeStanza(&Presence{From: local, To: remote, Availability: Offline}, t.Presence, false)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	case st.SeesContact() && !next.SeesContact():
		// The user no longer sees the contact: its presence is not
		// known any more.
		if t.forgetContact(k) {
			if err := t.Host.DeliverPresence(ctx, &Presence{From: remote, To: local, Availability: Unknown}); err != nil {
				t.log().LogAttrs(ctx, slog.LevelWarn, "translate: Host.DeliverPresence failed", slog.Any("err", err))
			}
		}
	}
	return out, nil
}

// ---- Streams ----

// StreamDown tells the Translator that federation with a remote domain is
// lost: every contact at that domain whose presence the host was told is
// reported Unknown (not Offline, REFERENCE §5.8 #91), and forgotten until
// new presence arrives. Host errors are logged and returned joined; every
// contact is tried.
func (t *Translator) StreamDown(ctx context.Context, domain string) error {
	if err := t.ready(); err != nil {
		return err
	}
	var lost []*contact
	t.st.mu.Lock()
	for k, c := range t.st.contacts {
		if sameDomain(c.remote.Domainpart(), domain) {
			delete(t.st.contacts, k)
			if c.told != nil {
				lost = append(lost, c)
			}
		}
	}
	t.st.mu.Unlock()
	slices.SortFunc(lost, func(a, b *contact) int {
		return cmp.Or(cmp.Compare(a.local.String(), b.local.String()), cmp.Compare(a.remote.String(), b.remote.String()))
	})
	var errs []error
	for _, c := range lost {
		if err := t.Host.DeliverPresence(ctx, &Presence{From: c.remote, To: c.local, Availability: Unknown}); err != nil {
			t.log().LogAttrs(ctx, slog.LevelWarn, "translate: Host.DeliverPresence failed", slog.String("from", c.remote.String()), slog.Any("err", err))
			errs = append(errs, err)
		}
	}
	t.log().LogAttrs(ctx, slog.LevelDebug, "translate: stream down", slog.String("domain", domain), slog.Int("contacts", len(lost)))
	return errors.Join(errs...)
}

// StreamUp tells the Translator that federation with a remote domain is
// back; it returns the presence probes to send for every local user's
// contact there (RFC 6121 §4.3.1, REFERENCE §5.8 #91), one per (local
// user, contact) pair, from the local bare JID to the contact's bare JID.
func (t *Translator) StreamUp(ctx context.Context, domain string) (out [][]byte, err error) {
	if err := t.ready(); err != nil {
		return nil, err
	}
	pairs, err := t.Roster.Contacts(ctx, domain)
	if err != nil {
		return nil, err
	}
	for _, p := range pairs {
		b, err := Encode(&Probe{From: p[0].Bare(), To: p[1].Bare()}, t.Presence, false)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// ---- A bounded map ----

// lru is a map from pairs that keeps at most max entries, forgetting the
// one set longest ago. Its zero value (with max set) is ready to use.
type lru[V any] struct {
	max   int
	items map[pairKey]*list.Element
	order list.List // front: most recently set
}

type lruEntry[V any] struct {
	k pairKey
	v V
}

func (m *lru[V]) get(k pairKey) (V, bool) {
	if e, ok := m.items[k]; ok {
		return e.Value.(*lruEntry[V]).v, true
	}
	var zero V
	return zero, false
}

func (m *lru[V]) set(k pairKey, v V) {
	if m.items == nil {
		m.items = make(map[pairKey]*list.Element)
	}
	if e, ok := m.items[k]; ok {
		e.Value.(*lruEntry[V]).v = v
		m.order.MoveToFront(e)
		return
	}
	m.items[k] = m.order.PushFront(&lruEntry[V]{k, v})
	for m.max > 0 && len(m.items) > m.max {
		e := m.order.Back()
		m.order.Remove(e)
		delete(m.items, e.Value.(*lruEntry[V]).k)
	}
}

func (m *lru[V]) delete(k pairKey) {
	if e, ok := m.items[k]; ok {
		m.order.Remove(e)
		delete(m.items, k)
	}
}

func (m *lru[V]) len() int { return len(m.items) }
