package s2s

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"mellium.im/xmpp/stanza"
	streamerr "mellium.im/xmpp/stream"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/internal/clock"
	"github.com/xmppfed/xmppfed/policy"
)

// Pool timing. A failed attempt bounces the stanzas queued for the pair at
// once, so their senders learn of the failure without waiting. After f
// consecutive failures the pool retries the pair by itself after
// backoff(f) = minRetry·2^(f-1), ±20% jitter, capped at maxRetry, for as
// long as the pair was used within the last maxRetry. A stanza sent during
// that window does not wait for the window to end and is never bounced
// without an attempt of its own: it starts an attempt at once when the last
// one began at least minRetry ago, else minRetry after the last one (so a
// stanza flood dials a dead domain at most once a second).
const (
	minRetry = time.Second
	maxRetry = 5 * time.Minute
)

// outPair is the outbound pool entry for one (local, remote) pair.
type outPair struct {
	p pair
	// all guarded by mu
	queue    []*Stanza   // stanzas waiting for a stream, in order
	st       *stream     // the stream stanzas go to once ready
	dialing  bool        // an attempt is running
	failures int         // consecutive failed attempts
	last     time.Time   // when the last attempt began
	used     time.Time   // last Send for this pair
	timer    clock.Timer // pending attempt (minRetry wait or background retry)
	dead     bool        // pruned from the pool: look the pair up again
	admitted uint64      // Policy generation p.remote was last admitted in (0: none)
	mu       sync.Mutex
}

// pairEntry returns the pool entry for p, locked, creating it if needed.
func (s *Server) pairEntry(p pair) (*outPair, error) {
	r := &s.run
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, ErrServerClosed
		}
		op := r.pairs[p]
		if op == nil {
			op = &outPair{p: p}
			r.pairs[p] = op
		}
		r.mu.Unlock()
		op.mu.Lock()
		if !op.dead {
			return op, nil
		}
		op.mu.Unlock() // pruned meanwhile: its replacement is in the map
	}
}

// prune removes op from the pool when nothing refers to it any more (no
// stream, nothing queued, no attempt running or scheduled), so a server
// that federated with many domains over time does not keep an entry for
// each forever. op.mu is held; the lock order is op.mu, then s.run.mu.
func (s *Server) prune(op *outPair) {
	if op.st != nil || len(op.queue) > 0 || op.dialing || op.failures > 0 {
		return
	}
	r := &s.run
	r.mu.Lock()
	if r.pairs[op.p] == op {
		delete(r.pairs, op.p)
	}
	r.mu.Unlock()
	op.dead = true
}

// randInt63n is the default jitter source.
func randInt63n(n int64) int64 { return rand.Int64N(n) }

// backoff returns the delay before the background retry after f
// consecutive failures.
func (s *Server) backoff(f int) time.Duration {
	d := maxRetry
	if f < 20 {
		d = min(minRetry<<(f-1), maxRetry)
	}
	// ±20% jitter so that many pairs failing together do not retry in step.
	j := int64(d) / 5
	return d - time.Duration(j) + time.Duration(s.run.rand(2*j+1))
}

// Send queues st for delivery to its remote domain and returns once it is
// queued: written to an established stream, or waiting for one being
// opened. Its from must be an address of one of our domains and its to
// an address of a remote one. Errors: bad addressing (a plain error),
// ErrServerClosed, a refusal by Server.Policy, and the pair's queue full
// (stanza.Error resource-constraint, Limits.QueueSize). A refusal is a
// *policy.Denial (use errors.As): the remote domain is not admitted
// (REFERENCE §5.2 #18: then no DNS query is made and no connection
// opened), or the local sender (a from with a localpart) may not use
// XMPP (§5.6 #59); its StanzaError (service-unavailable) is the error to
// give the sender. Nothing is queued then. A failure after Send returned
// goes to Server.Bounce. ctx bounds only the policy's user check; it does
// not bound delivery.
func (s *Server) Send(ctx context.Context, st *Stanza) error { return s.send(ctx, st, true) }

// send is Send; checkUser false skips the user check, for the replies the
// library itself sends on behalf of a local address (error replies to
// stanzas refused or failed, pongs).
func (s *Server) send(ctx context.Context, st *Stanza, checkUser bool) error {
	if st == nil || len(st.raw) == 0 {
		return errors.New("s2s: Send: the stanza is nil or empty (build it with ParseStanza)")
	}
	s.start()
	if !s.isLocal(st.srcDomain) {
		return fmt.Errorf("s2s: Send: from %q is not one of our domains", st.From.String())
	}
	if s.isLocal(st.dstDomain) {
		return fmt.Errorf("s2s: Send: to %q is a local domain; deliver it locally", st.To.String())
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if checkUser && s.Policy != nil && st.From.Localpart() != "" {
		// REFERENCE §5.6 #59: a user without XMPP access sends nothing.
		if err := s.Policy.CheckUser(ctx, st.From.Bare()); err != nil {
			s.refused(ctx, "outbound stanza from a local user", st.dstDomain, err)
			return err
		}
	}
	p := pair{local: st.srcDomain, remote: st.dstDomain}
	op, err := s.pairEntry(p)
	if err != nil {
		return err
	}
	defer op.mu.Unlock()
	// The policy on every stanza: a refused domain never gets a stream,
	// a DNS query or a connection, nor anything queued. The pair remembers
	// the configuration generation its domain was last admitted in, so
	// the look-up is repeated only after a change.
	if gen := s.generation(); gen == 0 || op.admitted != gen {
		if _, err := s.remote(p.remote); err != nil {
			op.admitted = 0
			s.prune(op)
			s.refused(ctx, "outbound stanza", p.remote, err)
			return err
		}
		op.admitted = gen
	}
	op.used = s.clock.Now()
	if op.st != nil && len(op.queue) == 0 {
		if op.st.enqueue(outItem{raw: st.raw, stz: st}) {
			return nil
		}
		op.st = nil // it ended; queue and reconnect
	}
	if len(op.queue) >= s.limits.QueueSize {
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint,
			Text: map[string]string{"": fmt.Sprintf("%d stanzas already queued for %s (Limits.QueueSize)", len(op.queue), p.remote)}}
	}
	op.queue = append(op.queue, st)
	s.run.queued.Add(1)
	s.kick(op)
	return nil
}

// kick starts or schedules an attempt for op's queue; op.mu is held.
func (s *Server) kick(op *outPair) {
	if op.dialing || len(op.queue) == 0 {
		return
	}
	if op.st != nil {
		// A stream is ready (the queue was refilled by a lost stream or a
		// failed enqueue): move the queue to it.
		if s.flush(op, op.st) {
			return
		}
		op.st = nil
	}
	if s.run.ctx.Err() != nil {
		return // Close bounces what is left
	}
	now := s.clock.Now()
	if wait := op.last.Add(minRetry).Sub(now); op.failures > 0 && wait > 0 {
		if op.timer != nil {
			op.timer.Stop()
		}
		op.timer = s.clock.AfterFunc(wait, func() { s.retry(op, false) })
		return
	}
	if op.timer != nil {
		op.timer.Stop()
	}
	op.dialing = true
	op.last = now
	s.run.wg.Go(func() { s.attempt(op) })
}

// flush moves op's queue to st in order; op.mu is held. It reports false
// (keeping the queue) when st no longer takes stanzas.
func (s *Server) flush(op *outPair, st *stream) bool {
	if len(op.queue) == 0 {
		return true
	}
	items := make([]outItem, len(op.queue))
	for i, q := range op.queue {
		items[i] = outItem{raw: q.raw, stz: q}
	}
	// The count drops before the stream can write them, so that Queued
	// never counts a stanza already delivered.
	s.run.queued.Add(-int64(len(op.queue)))
	if !st.enqueue(items...) {
		s.run.queued.Add(int64(len(op.queue)))
		return false
	}
	clear(op.queue)
	op.queue = op.queue[:0]
	return true
}

// retry runs a scheduled attempt: the minRetry wait after a stanza, or a
// background retry (background true) that stops once the pair is unused.
func (s *Server) retry(op *outPair, background bool) {
	if s.run.ctx.Err() != nil || (background && s.isClosed()) {
		s.notifyPool()
		return
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.dialing || op.st != nil {
		return
	}
	if background && len(op.queue) == 0 {
		if s.clock.Now().Sub(op.used) > maxRetry {
			op.failures = 0 // give up: nobody sends there any more
			s.prune(op)
			return
		}
		op.dialing = true
		op.last = s.clock.Now()
		s.run.wg.Go(func() { s.attempt(op) })
		return
	}
	op.failures = max(op.failures, 1)
	op.last = time.Time{} // the wait is over
	s.kick(op)
}

// attempt obtains a stream for op.p (reuse, piggyback or a new one) and
// delivers op's queue to it, or bounces the queue.
func (s *Server) attempt(op *outPair) {
	ctx, cancel := context.WithCancelCause(s.run.ctx)
	t := s.negotiationTimer(cancel)
	st, err := s.obtain(ctx, op.p)
	if t != nil {
		t.Stop()
	}
	cancel(nil)
	op.mu.Lock()
	op.dialing = false
	var bounced []*Stanza
	if err == nil {
		op.failures = 0
		if op.timer != nil {
			op.timer.Stop()
		}
		op.st = st
		if !s.flush(op, st) {
			op.st = nil
			err = fmt.Errorf("%w: the stream to %s ended at once", ErrStreamClosed, op.p.remote)
		}
	}
	if err != nil {
		op.failures++
		bounced = op.queue
		op.queue = nil
		s.run.queued.Add(-int64(len(bounced)))
		if s.run.ctx.Err() == nil && !s.isClosed() {
			op.timer = s.clock.AfterFunc(s.backoff(op.failures), func() { s.retry(op, true) })
		}
	}
	op.mu.Unlock()
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelInfo, "s2s outbound stream failed",
			slog.String("local", op.p.local), slog.String("remote", op.p.remote),
			slog.Int("bounced", len(bounced)), slog.Any("err", err))
		s.failedEvent(Outbound, op.p.local, op.p.remote, err)
		s.bounce(bounced, bounceError(op.p.remote, err))
	}
	s.notifyPool()
}

// obtain returns a stream we may send on for p: an established one, one
// to the same remote server authorised for p by piggybacking (XEP-0220
// §2.4, XEP-0344 when the certificate covers both), or a new one, opened
// once one of the Limits.Establishing slots is free.
func (s *Server) obtain(ctx context.Context, p pair) (*stream, error) {
	if st, err := s.reuse(ctx, p); st != nil || err != nil {
		return st, err
	}
	r := &s.run
	rem, err := s.remote(p.remote)
	if err != nil {
		return nil, negErr(p.local, p.remote, "policy", fmt.Errorf("%w: %w", ErrRefused, err))
	}
	waited, err := s.establishSlot(ctx)
	if err != nil {
		return nil, negErr(p.local, p.remote, "connect", fmt.Errorf("waiting for one of the %d establishment slots (Limits.Establishing): %w", cap(r.slots), err))
	}
	defer s.releaseSlot()
	if waited {
		// Another pair may have opened a stream this one can use while
		// this one waited.
		if st, err := s.reuse(ctx, p); st != nil || err != nil {
			return st, err
		}
	}
	key, err := s.reserveDial(rem)
	if err != nil {
		return nil, err
	}
	st, err := s.dialStream(ctx, p.local, p.remote)
	r.mu.Lock()
	if r.dials[key]--; r.dials[key] <= 0 {
		delete(r.dials, key)
	}
	r.dialsAll--
	r.mu.Unlock()
	if err != nil {
		if c := context.Cause(ctx); c != nil && errors.Is(c, errNegotiationTimeout) {
			err = fmt.Errorf("%w (%w)", err, c)
		}
		return nil, err
	}
	if err := s.register(st); err != nil {
		if st.w != nil {
			_ = st.w.Close()
		}
		_ = st.conn.Close()
		st.closeNeg(err)
		return nil, err
	}
	r.wg.Go(func() { _ = s.runStream(st) })
	return st, nil
}

// reuse returns an established stream that carries p or can be made to
// by piggybacking, or nil (and a nil error) when a new one is needed; the
// error is ctx's end.
func (s *Server) reuse(ctx context.Context, p pair) (*stream, error) {
	if st := s.outboundFor(p.local, p.remote); st != nil {
		return st, nil
	}
	for _, st := range s.piggybackCandidates(p) {
		if err := st.authorizeSend(ctx, p.local, p.remote); err == nil {
			return st, nil
		} else {
			s.log.LogAttrs(ctx, slog.LevelDebug, "s2s piggyback refused",
				slog.String("local", p.local), slog.String("remote", p.remote), slog.Any("err", err))
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
	}
	return nil, nil
}

// establishSlot takes one of the Limits.Establishing slots for a new
// outbound stream, waiting for one while ctx lasts (no bound with a
// negative limit: r.slots is nil). It reports whether it had to wait; the
// caller gives the slot back with releaseSlot.
func (s *Server) establishSlot(ctx context.Context) (waited bool, err error) {
	slots := s.run.slots
	if slots == nil {
		return false, nil
	}
	select {
	case slots <- struct{}{}:
		return false, nil
	default:
	}
	select {
	case slots <- struct{}{}:
		return true, nil
	case <-ctx.Done():
		return true, context.Cause(ctx)
	}
}

// releaseSlot gives back a slot establishSlot took.
func (s *Server) releaseSlot() {
	if s.run.slots != nil {
		<-s.run.slots
	}
}

// piggybackCandidates lists established streams we send on that may carry
// p too: those to p.remote (another of our domains), then those to
// another domain of the same partner (REFERENCE §5.3 #37) whose peer
// certificate also verifies for p.remote (the same server). It looks only
// at the streams to p.remote and, for a partner's domain, at those counted
// under the partner (the byRemote and byPartner indexes).
func (s *Server) piggybackCandidates(p pair) []*stream {
	rem, err := s.remote(p.remote)
	if err != nil {
		return nil
	}
	r := &s.run
	r.mu.Lock()
	var same, other []*stream
	for _, st := range r.byRemote[p.remote] {
		if st.rt.accepting() && st.canPing() {
			same = append(same, st)
		}
	}
	if rem.Partner != "" {
		// Under open federation (no partner) a domain is its own partner:
		// only streams to p.remote itself qualify, listed above. A
		// partner's streams are those to its main domain and those
		// indexed under it.
		key := partnerKey(rem)
		for _, l := range [2][]*stream{r.byRemote[key], r.byPartner[key]} {
			for _, st := range l {
				if st.remote == p.remote || st.partner != key || st.tls == nil || len(st.tls.PeerCertificates) == 0 {
					continue
				}
				if st.rt.accepting() && st.canPing() && rem.SamePartner(st.remote) {
					other = append(other, st)
				}
			}
		}
	}
	r.mu.Unlock()
	for _, st := range other {
		if _, err := certs.Verify(p.remote, st.tls.PeerCertificates, s.Verify); err == nil {
			same = append(same, st)
		}
	}
	return same
}

// bounceError is the stanza error for stanzas that could not be sent to
// remote because of err, with a text that says why.
func bounceError(remote string, err error) stanza.Error {
	var d *policy.Denial
	if errors.As(err, &d) {
		return d.StanzaError()
	}
	if errors.Is(err, streamerr.ResourceConstraint) {
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint,
			Text: map[string]string{"": "too many streams: " + err.Error()}}
	}
	cond := bounceCondition(err)
	typ := stanza.Wait
	why := "the server of " + remote + " did not answer or could not be authenticated: " + err.Error()
	if cond == stanza.RemoteServerNotFound {
		typ = stanza.Cancel
		why = "no server found for " + remote + ": " + err.Error()
	}
	return stanza.Error{Type: typ, Condition: cond, Text: map[string]string{"": why}}
}

// bounce hands each stanza to Server.Bounce with e, except error stanzas,
// which are dropped (RFC 6120 §8.3.1: never answer an error with an error).
func (s *Server) bounce(sts []*Stanza, e stanza.Error) {
	for _, st := range sts {
		if st.isError() {
			s.log.LogAttrs(context.Background(), slog.LevelDebug, "s2s undeliverable error stanza dropped",
				slog.String("to", st.To.String()), slog.String("why", e.Error()))
			continue
		}
		if s.Bounce == nil {
			s.log.LogAttrs(context.Background(), slog.LevelWarn, "s2s stanza not delivered",
				slog.String("from", st.From.String()), slog.String("to", st.To.String()),
				slog.String("condition", string(e.Condition)), slog.String("why", e.Text[""]))
			continue
		}
		s.Bounce(s.run.ctx, st, e)
	}
}

// bounceAll bounces every queued stanza (Close).
func (s *Server) bounceAll(why error) {
	ops := s.pairSnapshot()
	for _, op := range ops {
		op.mu.Lock()
		q := op.queue
		op.queue = nil
		s.run.queued.Add(-int64(len(q)))
		if op.timer != nil {
			op.timer.Stop()
		}
		op.mu.Unlock()
		s.bounce(q, stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout,
			Text: map[string]string{"": why.Error()}})
	}
}

// streamLost gives back the stanzas a stream did not deliver (unsent, or
// unacknowledged with XEP-0198) to their pairs, ahead of newer ones, and
// reconnects the pairs that have stanzas waiting. It touches only the
// pool entries concerned: the pairs of the stanzas given back and the
// pairs st was authorized to send for (a pair's stream is always one
// authorized for it).
func (s *Server) streamLost(st *stream, back []*Stanza, err error) {
	r := &s.run
	byPair := make(map[pair][]*Stanza)
	for _, b := range back {
		p := pair{local: b.srcDomain, remote: b.dstDomain}
		byPair[p] = append(byPair[p], b)
	}
	st.mu.Lock()
	concerned := make([]pair, 0, st.send.len()+len(byPair))
	for p := range st.send.all() {
		concerned = append(concerned, p)
	}
	for p := range byPair {
		if !st.send.has(p) {
			concerned = append(concerned, p)
		}
	}
	st.mu.Unlock()
	r.mu.Lock()
	ops := make([]*outPair, 0, len(concerned))
	for _, p := range concerned {
		if op := r.pairs[p]; op != nil {
			ops = append(ops, op)
		}
	}
	r.mu.Unlock()
	var stopped []*Stanza
	for _, op := range ops {
		op.mu.Lock()
		if op.st == st {
			op.st = nil
		}
		if b := byPair[op.p]; len(b) > 0 {
			delete(byPair, op.p)
			op.queue = append(b, op.queue...)
			s.run.queued.Add(int64(len(b)))
			s.kick(op) // no attempt once Close began
		}
		if r.ctx.Err() != nil && len(op.queue) > 0 && !op.dialing {
			// Close began: nobody retries, and Close's own bounceAll
			// may have passed this pair already (checked under op.mu,
			// after the requeue, so one of the two bounces them).
			stopped = append(stopped, op.queue...)
			s.run.queued.Add(-int64(len(op.queue)))
			op.queue = nil
		}
		s.prune(op)
		op.mu.Unlock()
	}
	why := errors.New("the stream ended before delivery")
	if err != nil {
		why = fmt.Errorf("the stream ended before delivery: %w", err)
	}
	for _, b := range byPair {
		// No pool entry (bidi replies and pings): nobody will retry them.
		s.bounce(b, stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout,
			Text: map[string]string{"": why.Error()}})
	}
	s.bounce(stopped, stanza.Error{Type: stanza.Wait, Condition: stanza.RemoteServerTimeout,
		Text: map[string]string{"": why.Error()}})
	s.notifyPool()
}

// poolIdle reports whether no pair has stanzas queued or an attempt
// running.
func (s *Server) poolIdle() bool {
	ops := s.pairSnapshot()
	for _, op := range ops {
		op.mu.Lock()
		busy := op.dialing || (len(op.queue) > 0 && op.timer != nil)
		if len(op.queue) > 0 && !op.dialing {
			// Shutdown delivers or bounces: do not wait for a timer.
			if op.timer != nil {
				op.timer.Stop()
			}
			s.kick(op)
			busy = op.dialing || len(op.queue) > 0
		}
		op.mu.Unlock()
		if busy {
			return false
		}
	}
	return true
}

// notifyPool wakes Shutdown's wait for the pool.
func (s *Server) notifyPool() {
	select {
	case s.run.poolc <- struct{}{}:
	default:
	}
}

// poolChanged returns the channel notifyPool signals.
func (s *Server) poolChanged() <-chan struct{} { return s.run.poolc }

// pairSnapshot returns the pool's entries at this moment; callers lock
// each entry themselves (lock order: op.mu, then s.run.mu).
func (s *Server) pairSnapshot() []*outPair {
	r := &s.run
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := make([]*outPair, 0, len(r.pairs))
	for _, op := range r.pairs {
		ops = append(ops, op)
	}
	return ops
}
