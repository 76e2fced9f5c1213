package s2s

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/stanza"
	streamerr "mellium.im/xmpp/stream"

	"github.com/xmppfed/xmppfed/internal/clock"
	"github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/policy"
)

// smAckEvery is how many unacknowledged stanzas make the writer request an
// ack (XEP-0198 §4) even while more are queued.
const smAckEvery = 32

// outItem is one piece of XML queued for a stream's writer: a stanza
// (tracked for XEP-0198 and requeued when the stream dies unsent) or
// control XML (ping, acks).
type outItem struct {
	raw []byte
	stz *Stanza // nil for control XML
}

// runState is the runtime state of one established stream: the write
// queue and its writer goroutine, timers, counters and XEP-0198 state.
type runState struct {
	// addrs are the read loop's parsed addresses, allocated with the
	// first stanza and dropped when the stream goes idle (owned by the
	// read loop: no locking).
	addrs  *addrCache
	dd     *dedupeCache    // the read loop's resend-check shortcut (dedupe.go), same rules as addrs
	ctx    context.Context // ends when the stream ends
	cancel context.CancelFunc

	mu      sync.Mutex
	q       []outItem // waiting for the writer, in order
	spare   []outItem // the writer's previous batch, reused
	closing bool      // no more enqueues; the writer ends the stream once q is empty
	failed  bool      // a stream error was sent: drop q
	// XEP-0198 (outbound streams whose peer offered it).
	// smOn: <enable/> is queued ahead of every stanza and the peer has not
	// refused it, so every stanza written is counted (XEP-0198 §4: our
	// count starts when we send <enable/>, the peer's when it answers).
	smOn      bool
	smEnabled bool      // <enabled/> received: acks may be requested, inH counts
	unacked   []*Stanza // written, not yet acknowledged, oldest first
	outH      uint32    // stanzas written since <enable/>
	ackedH    uint32    // last h the peer acknowledged
	askedAck  bool      // an <r/> is outstanding
	inH       uint32    // stanzas received (answered in <a h=/>)
	// smIn: the peer enabled XEP-0198 on the stream it opened (inbound):
	// inH counts the stanzas it sends us and its <r/> is answered. Our own
	// stanzas on such a stream (bidi) are not tracked: the peer starts
	// counting them when it sends <enable/>, we could only from the moment
	// it arrives, and stanzas written in between would be miscounted.
	smIn bool
	// wroteClose: our </stream:stream> was written; cleanEnd: the peer's
	// arrived after it, so the peer handled everything we wrote before
	// (RFC 6120 §4.4) and unacknowledged stanzas need no resend.
	wroteClose, cleanEnd bool

	pingID    string    // outstanding XEP-0199 ping, "" if none
	pingSent  time.Time // when pingID was sent
	bytesIn   int64     // reader byte count at the last timer check
	lastSend  time.Time // last write (stanza, control XML or whitespace)
	lastRecv  time.Time // last element or bytes received (ping liveness)
	lastData  time.Time // last element received or queued XML written (idle)
	bytesElem int64     // reader byte count after the last element
	timer     clock.Timer
	auth      AuthMethod // how the first pair was authenticated
	// The writer goroutine runs only while there is something to write
	// (an idle stream keeps no goroutine and no stack for it): enqueue
	// starts it, it exits once the queue is empty.
	running bool           // runStream started: a writer may run
	writing bool           // a writer goroutine is running
	wdone   bool           // the writer finished for good (closed our half, failed or broken)
	ended   bool           // endStream began: no writer starts any more
	writers sync.WaitGroup // writer goroutines, waited for by endStream and waitWriter

	// Hibernation (hibernate.go): hibReq: tick interrupted the reader to
	// make it hibernate; hibernated: the Server's poller holds the stream
	// (no reader goroutine) under id hibID; hibBase: when the reader last
	// declined or woke (hibernation is due hibernateAfter after it and
	// after lastRecv).
	hibReq, hibernated bool
	hibID              uint64
	hibBase            time.Time

	registered bool
	in, out    atomic.Uint64 // stanzas received, sent
	endErr     error         // why the stream ended
}

// newRunState prepares st for the runtime; it is called once, before the
// stream is shared. It allocates what every established stream needs and
// nothing more: the wait context of the rate limiter is made only when a
// stanza must wait (pace), the address cache with the first stanza.
func (s *Server) newRunState(st *stream) *runState {
	if st.rt != nil {
		return st.rt
	}
	ctx, cancel := context.WithCancel(s.run.ctx)
	now := s.clock.Now()
	st.rt = &runState{
		ctx: ctx, cancel: cancel,
		lastSend: now, lastRecv: now, lastData: now,
	}
	if smOffered(st) {
		// XEP-0198 §3: enable on the outbound stream, before the stream
		// is shared, so <enable/> precedes every stanza on the wire and
		// all of them are counted; the peer answers <enabled/> or
		// <failed/>, handled by the read loop.
		st.rt.smOn = true
		st.rt.q = append(st.rt.q, outItem{raw: []byte("<enable xmlns='" + wire.NSSM + "'/>")})
	}
	if st.neg != nil {
		// The peer's features were needed for the line above only: an
		// established stream does not keep the element.
		st.neg.features = nil
	}
	return st.rt
}

// enqueue queues items for the writer; it returns false when the stream
// no longer takes stanzas (closing or failed).
func (st *stream) enqueue(items ...outItem) bool {
	rt := st.rt
	rt.mu.Lock()
	if rt.closing || rt.failed {
		rt.mu.Unlock()
		return false
	}
	rt.q = append(rt.q, items...)
	st.srv.startWriterLocked(st)
	rt.mu.Unlock()
	return true
}

// startWriterLocked starts the writer goroutine when there is work for it
// (queued XML, or a graceful close or failure to finish) and none is
// running; rt.mu is held. Only one writer runs at a time, so queued XML
// goes out in order.
func (s *Server) startWriterLocked(st *stream) {
	rt := st.rt
	if !rt.running || rt.writing || rt.wdone || rt.ended {
		return
	}
	if len(rt.q) == 0 && !rt.closing && !rt.failed {
		return
	}
	rt.writing = true
	// The stream's read loop is counted in s.run.wg until endStream sets
	// rt.ended, so this Add never races with Close's Wait at zero.
	rt.writers.Add(1)
	s.run.wg.Go(func() {
		defer rt.writers.Done()
		s.writeLoop(st)
	})
}

// finishWriterLocked records that the writer is done for good; rt.mu is
// held.
func (rt *runState) finishWriterLocked() {
	rt.writing = false
	rt.wdone = true
}

// writeLoop writes queued XML: it takes the whole queue at once and writes
// it with one flush (batching), in order, until the queue is empty; then
// it exits (enqueue starts it again). It ends the stream with
// </stream:stream> when closing and drained.
func (s *Server) writeLoop(st *stream) {
	rt := st.rt
	for {
		rt.mu.Lock()
		if rt.failed || rt.ctx.Err() != nil {
			rt.finishWriterLocked()
			rt.mu.Unlock()
			return
		}
		if len(rt.q) == 0 {
			if rt.closing {
				rt.mu.Unlock()
				// Graceful end (RFC 6120 §4.4): everything queued is
				// written; close our half and let the reader wait for
				// the peer's </stream:stream>.
				// wroteClose is set before the write: the peer's answer
				// can be read before Close returns.
				rt.mu.Lock()
				rt.wroteClose = true
				rt.mu.Unlock()
				err := st.w.Close()
				rt.mu.Lock()
				rt.wroteClose = err == nil
				rt.finishWriterLocked()
				rt.mu.Unlock()
				return
			}
			// Idle: exit, keeping no goroutine. A large spare array
			// from a burst is not kept either.
			rt.writing = false
			if cap(rt.spare) > 64 {
				rt.spare = nil
			}
			rt.mu.Unlock()
			return
		}
		batch := rt.q
		// Swap in the spare array only when taking something, so queue
		// and spare never share one (an alias let enqueue's append
		// overwrite a batch being written, losing stanzas).
		rt.q, rt.spare = rt.spare[:0], nil
		smOn := rt.smOn
		rt.mu.Unlock()
		// With stream management the stanzas are recorded as
		// unacknowledged BEFORE they are written: a large batch goes out
		// while it is being written, and the peer's <a/> for it may be
		// read before the write returns (XEP-0198 §4 counts what was
		// sent, so it must already be counted).
		ask := smOn && s.smTrack(st, batch)
		var err error
		sent := 0
		for i := range batch {
			if err = st.w.WriteRawNoFlush(batch[i].raw); err != nil {
				break
			}
			if batch[i].stz != nil {
				sent++
			}
		}
		if err == nil && ask {
			err = st.w.WriteRawNoFlush([]byte("<r xmlns='" + wire.NSSM + "'/>"))
		}
		if err == nil {
			err = st.w.Flush()
		}
		if err != nil {
			// The reader sees the broken connection too; give back
			// what was not written so the pool can requeue it. Tracked
			// stanzas are already in the unacknowledged list, which is
			// requeued when the stream ends: giving them back here too
			// would send them twice.
			rt.mu.Lock()
			if !smOn {
				rt.q = append(batch, rt.q...)
			}
			rt.finishWriterLocked()
			rt.mu.Unlock()
			s.wakeStream(st) // a hibernating stream needs its reader to end
			_ = st.conn.Close()
			return
		}
		st.rt.out.Add(uint64(sent))
		now := s.clock.Now()
		rt.mu.Lock()
		rt.lastSend, rt.lastData = now, now
		clear(batch)
		rt.spare = batch[:0]
		rt.mu.Unlock()
	}
}

// smTrack records the stanzas of a batch about to be written as
// unacknowledged and reports whether to ask for an ack after them (XEP-0198
// §4): when enough are outstanding or nothing else is queued.
func (s *Server) smTrack(st *stream, batch []outItem) bool {
	rt := st.rt
	rt.mu.Lock()
	defer rt.mu.Unlock()
	n := 0
	for i := range batch {
		if batch[i].stz != nil {
			rt.unacked = append(rt.unacked, batch[i].stz)
			rt.outH++
			n++
		}
	}
	if n == 0 {
		return false
	}
	ask := rt.smEnabled && !rt.askedAck && (len(rt.unacked) >= smAckEvery || len(rt.q) == 0)
	if ask {
		rt.askedAck = true
	}
	return ask
}

// smOffered reports whether the peer's stream features (outbound streams)
// offer XEP-0198 stream management.
func smOffered(st *stream) bool {
	if st.dir != Outbound || st.neg == nil || st.neg.features == nil {
		return false
	}
	if !bytes.Contains(st.neg.features.Raw, []byte(wire.NSSM)) {
		return false
	}
	kids, err := st.neg.features.Children()
	if err != nil {
		return false
	}
	for _, k := range kids {
		if k.Name.Space == wire.NSSM && k.Name.Local == "sm" {
			return true
		}
	}
	return false
}

// runStream runs an authenticated stream until it ends: the writer
// goroutine, the timers, and (in the calling goroutine) the read loop.
// It returns why the stream ended.
func (s *Server) runStream(st *stream) error {
	rt := s.newRunState(st)
	var auth AuthMethod
	st.mu.Lock()
	for _, m := range st.recv.all() {
		auth = max(auth, m)
	}
	for _, m := range st.send.all() {
		auth = max(auth, m)
	}
	st.mu.Unlock()
	if st.neg != nil && st.neg.auth != AuthNone {
		auth = st.neg.auth
	}
	rt.mu.Lock()
	rt.auth = auth
	rt.bytesIn = st.r.LastActivity() // negotiation bytes are not traffic
	rt.mu.Unlock()
	s.logNegotiated(st)
	st.r.SetBufferPool(&s.run.bufs)
	st.w.SetBufferPool(&s.run.bufs)
	rt.mu.Lock()
	rt.running = true
	s.startWriterLocked(st) // <enable/> or stanzas may be queued already
	rt.mu.Unlock()
	// After running is set, so that a hook reading Stats finds the stream.
	s.streamEvent(StreamEstablished, st, nil)
	d := s.nextTick(st)
	rt.mu.Lock()
	rt.timer = s.clock.AfterFunc(d, func() { s.tick(st) })
	rt.mu.Unlock()
	// The connection is closed when the stream ends (endStream) and by
	// Close (every registered stream's): rt.ctx needs no watcher of its own.
	if derr := s.streamDenied(st); derr != nil {
		// The policy changed while the stream was being negotiated
		// (REFERENCE §5.1 #16): it ends before any stanza is read.
		s.refused(rt.ctx, "stream", st.remote, derr)
		_ = st.streamFail(streamerr.PolicyViolation, derr.Error())
	}
	parked, err := s.readLoop(st)
	if parked {
		return nil // the stream lives on, hibernating: resume ends it
	}
	s.endStream(st, err)
	return err
}

// readLoop reads top-level elements until the stream ends (it returns why)
// or hibernates (parked: another goroutine may already be reading; the
// caller must leave the stream alone).
func (s *Server) readLoop(st *stream) (parked bool, _ error) {
	rt := st.rt
	for {
		el, err := st.r.Next()
		if err != nil {
			if handled, parked := s.hibernate(st, err); handled {
				if parked {
					return true, nil
				}
				continue
			}
			if errors.Is(err, wire.ErrStreamEnd) {
				// RFC 6120 §4.4: the peer closed; finish writing and close
				// our side too. When our </stream:stream> went out first,
				// the peer read (and handled) every stanza before it
				// answered with its own: nothing is left unacknowledged.
				rt.mu.Lock()
				rt.cleanEnd = rt.wroteClose
				rt.mu.Unlock()
				st.closeGracefully()
				s.waitWriter(st)
				return false, nil
			}
			var se *wire.StreamError
			if errors.As(err, &se) {
				// RFC 6120 §4.9.4: with its application condition
				// (XEP-0205 stanza-too-big for an oversized stanza).
				return false, st.streamFailApp(se.Cond, se.App, se.Error())
			}
			return false, err
		}
		now := s.clock.Now()
		n := st.r.LastActivity()
		rt.mu.Lock()
		rt.lastRecv, rt.lastData, rt.bytesElem = now, now, n
		rt.mu.Unlock()
		if el.Name.Space == nsServer {
			switch el.Name.Local {
			case "message", "presence", "iq":
				if err := s.handleStanza(st, el); err != nil {
					return false, err
				}
				continue
			}
		}
		switch {
		case el.Name.Space == wire.NSSM:
			if err := s.handleSM(st, el); err != nil {
				return false, err
			}
			continue
		case isStreamError(el):
			perr := streamErrorOf(el)
			s.log.LogAttrs(rt.ctx, slog.LevelWarn, "s2s peer sent stream error",
				slog.String("local", st.local), slog.String("remote", st.remote), slog.Any("err", perr))
			return false, perr
		}
		handled, err := st.handleElement(rt.ctx, el)
		if err != nil {
			return false, err
		}
		if !handled {
			// RFC 6120 §4.9.3.24.
			return false, st.streamFail(streamerr.UnsupportedStanzaType, fmt.Sprintf("unexpected element {%s}%s", el.Name.Space, el.Name.Local))
		}
	}
}

// handleStanza checks one received stanza's addressing against the
// authenticated pairs (RFC 6120 §4.9.3, §8.1.1.1) and hands it to the
// Handler. It returns a non-nil error only when the stream must end.
func (s *Server) handleStanza(st *stream, el *wire.Element) error {
	rt := st.rt
	if rt.addrs == nil {
		rt.addrs = new(addrCache)
	}
	stz, err := newStanza(el.Name.Local, el.Attr, el.Raw, rt.addrs)
	if err != nil {
		// RFC 6120 §4.9.3.8: missing or invalid from/to between servers.
		return st.streamFail(streamerr.ImproperAddressing, err.Error())
	}
	if !s.isLocal(stz.dstDomain) {
		// RFC 6120 §4.9.3.6.
		return st.streamFail(streamerr.HostUnknown, "the to domain "+stz.dstDomain+" is not served here")
	}
	if !st.canRecv(pair{local: stz.dstDomain, remote: stz.srcDomain}) {
		st.mu.Lock()
		none := st.recv.len() == 0
		st.mu.Unlock()
		if none {
			// RFC 6120 §4.9.3.12: nothing is authenticated in this direction.
			return st.streamFail(streamerr.NotAuthorized, "no domain is authenticated to send on this stream")
		}
		// RFC 6120 §4.9.3.9.
		return st.streamFail(streamerr.InvalidFrom, "the from domain "+stz.srcDomain+" is not authenticated for "+stz.dstDomain+" on this stream")
	}
	rt.in.Add(1)
	rt.mu.Lock()
	if rt.smEnabled || rt.smIn {
		rt.inH++ // XEP-0198 §4: counted from <enabled/> (sent or received)
	}
	rt.mu.Unlock()
	if stz.Kind == "iq" && (stz.isError() || stz.Type == "result") && s.pongFor(stz) {
		return nil
	}
	if s.resent(st, stz) {
		// XEP-0198 resend of a stanza handled already (dedupe.go): dropped
		// before pacing, so resends after a lost stream do not spend the
		// partner's rate on what was delivered.
		return nil
	}
	if err := s.pace(st, stz); err != nil {
		return err
	}
	if stz.To.Localpart() != "" && s.Policy != nil {
		// REFERENCE §5.6 #59: a user without XMPP access receives nothing;
		// the sender gets the Denial's error (service-unavailable).
		if err := s.Policy.CheckUser(rt.ctx, stz.To.Bare()); err != nil {
			var d *policy.Denial
			if errors.As(err, &d) {
				s.refused(rt.ctx, "inbound stanza to a local user", stz.srcDomain, err)
				s.reply(rt.ctx, stz, d.StanzaError())
				return nil
			}
			s.log.LogAttrs(rt.ctx, slog.LevelWarn, "s2s user check failed",
				slog.String("to", stz.To.Bare().String()), slog.Any("err", err))
			s.reply(rt.ctx, stz, stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError})
			return nil
		}
	}
	if stz.Kind == "iq" {
		if stz.Type != "get" && stz.Type != "set" && stz.Type != "result" && stz.Type != "error" || stz.ID == "" {
			// RFC 6120 §8.2.3: answer a malformed iq with bad-request.
			s.reply(rt.ctx, stz, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: map[string]string{"": "iq needs an id and a type of get, set, result or error"}})
			return nil
		}
		if stz.Type == "get" && stz.To.Localpart() == "" && stz.To.Resourcepart() == "" && isPing(el) {
			// XEP-0199 §4.2: a server answers pings to its domain itself.
			s.sendRaw(rt.ctx, stz, pongXML(stz))
			return nil
		}
	}
	s.dispatch(rt.ctx, stz)
	return nil
}

// pace waits on the partner's rate limiter (Remote.Limiter, shared by all
// its streams) before a received stanza is handled: a fast partner is
// slowed down by TCP backpressure, not cut off. The wait ends at once when
// the stream ends or the Server begins to stop; the stanza is then not
// handled, and that is logged.
func (s *Server) pace(st *stream, stz *Stanza) error {
	if st.rem == nil || st.rem.Limiter == nil {
		return nil
	}
	if st.rem.Limiter.Allow() {
		return nil // a token at hand: no wait, so no wait context
	}
	rt := st.rt
	// The wait ends with the stream or when the Server begins to stop, so
	// that Shutdown is never held up by a slow partner.
	waitCtx, cancel := context.WithCancel(rt.ctx)
	defer cancel()
	stop := context.AfterFunc(s.run.stopping, cancel)
	defer stop()
	err := st.rem.Limiter.Wait(waitCtx)
	if err == nil {
		return nil
	}
	if waitCtx.Err() == nil {
		// A limiter that can never allow one stanza (burst below 1) would
		// stop the partner for good: it is a configuration error, let the
		// stanza through.
		s.log.LogAttrs(rt.ctx, slog.LevelWarn, "s2s rate limiter refuses every stanza; not pacing",
			slog.String("partner", st.partner), slog.Any("err", err))
		return nil
	}
	s.log.LogAttrs(rt.ctx, slog.LevelInfo, "s2s stanza not handled: the stream or server is closing",
		slog.String("from", stz.From.String()), slog.String("to", stz.To.String()), slog.String("kind", stz.Kind))
	return context.Cause(waitCtx)
}

// dispatch hands stz to the Handler and answers its error, recovering a
// panic (logged with the stack, answered internal-server-error).
func (s *Server) dispatch(ctx context.Context, stz *Stanza) {
	h := s.Handler
	if h == nil {
		s.reply(ctx, stz, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		return
	}
	err := func() (err error) {
		defer func() {
			if v := recover(); v != nil {
				s.log.LogAttrs(ctx, slog.LevelError, "s2s handler panic",
					slog.String("from", stz.From.String()), slog.String("to", stz.To.String()),
					slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
				err = errHandlerPanic
			}
		}()
		return h.HandleStanza(ctx, stz)
	}()
	if err == nil {
		return
	}
	var se stanza.Error
	if !errors.As(err, &se) {
		if !errors.Is(err, errHandlerPanic) {
			s.log.LogAttrs(ctx, slog.LevelWarn, "s2s handler error",
				slog.String("from", stz.From.String()), slog.String("to", stz.To.String()), slog.Any("err", err))
		}
		// STYLE §10: the text of a host error never leaves this server.
		se = stanza.Error{Type: stanza.Cancel, Condition: stanza.InternalServerError}
	}
	s.reply(ctx, stz, se)
}

var errHandlerPanic = errors.New("s2s: handler panicked")

// reply sends the error reply to stz through Send (the pool, or a bidi
// stream), unless stz is itself an error (RFC 6120 §8.3.1).
func (s *Server) reply(ctx context.Context, stz *Stanza, e stanza.Error) {
	if stz.isError() {
		return
	}
	r, err := stz.ErrorReply(e)
	if err != nil {
		return
	}
	if err := s.send(ctx, r, false); err != nil {
		s.log.LogAttrs(ctx, slog.LevelDebug, "s2s error reply not sent", slog.String("to", r.To.String()), slog.Any("err", err))
	}
}

// sendRaw sends raw as a reply to stz (from stz.To to stz.From).
func (s *Server) sendRaw(ctx context.Context, stz *Stanza, raw []byte) {
	r := &Stanza{Kind: stz.Kind, From: stz.To, To: stz.From, ID: stz.ID, Type: "result",
		raw: raw, srcDomain: stz.dstDomain, dstDomain: stz.srcDomain}
	if err := s.send(ctx, r, false); err != nil {
		s.log.LogAttrs(ctx, slog.LevelDebug, "s2s reply not sent", slog.String("to", r.To.String()), slog.Any("err", err))
	}
}

// isPing reports whether el is an iq carrying <ping xmlns='urn:xmpp:ping'/>.
func isPing(el *wire.Element) bool {
	if !bytes.Contains(el.Raw, []byte(wire.NSPing)) {
		return false
	}
	kids, err := el.Children()
	if err != nil {
		return false
	}
	for _, k := range kids {
		if k.Name.Space == wire.NSPing && k.Name.Local == "ping" {
			return true
		}
	}
	return false
}

// pongXML is the XEP-0199 §4.2 result to a ping.
func pongXML(ping *Stanza) []byte {
	b := []byte("<iq xmlns='jabber:server'")
	b = appendAttr(b, "from", ping.To.String())
	b = appendAttr(b, "to", ping.From.String())
	b = appendAttr(b, "id", ping.ID)
	return append(b, " type='result'/>"...)
}

// pongFor reports whether stz answers one of our pings (a result, or an
// error: both prove the peer alive, XEP-0199 §4.2), and clears it. The
// answer may arrive on another stream than the ping (without bidi it comes
// on the peer's own outbound stream).
func (s *Server) pongFor(stz *Stanza) bool {
	if len(stz.ID) < 5 || stz.ID[:5] != "ping-" {
		return false
	}
	s.run.mu.Lock()
	st := s.run.pings[stz.ID]
	delete(s.run.pings, stz.ID)
	s.run.mu.Unlock()
	if st == nil {
		return false
	}
	st.rt.mu.Lock()
	if st.rt.pingID == stz.ID {
		st.rt.pingID = ""
	}
	st.rt.mu.Unlock()
	return true
}

// handleSM handles XEP-0198 elements on a stream.
func (s *Server) handleSM(st *stream, el *wire.Element) error {
	rt := st.rt
	switch el.Name.Local {
	case "enable":
		// XEP-0198 §3: the initiating server enables stream management on
		// the stream it opened, once, after authentication (the runtime
		// only runs authenticated streams). Resumption (§5) is not
		// offered: <enabled/> carries no id, so a resume request is
		// simply not granted, which the XEP allows.
		rt.mu.Lock()
		ok := st.dir == Inbound && !rt.smIn
		if ok {
			rt.smIn, rt.inH = true, 0
		}
		rt.mu.Unlock()
		if !ok {
			st.enqueue(outItem{raw: []byte("<failed xmlns='" + wire.NSSM + "'><unexpected-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>")})
			return nil
		}
		st.enqueue(outItem{raw: []byte("<enabled xmlns='" + wire.NSSM + "'/>")})
	case "enabled":
		rt.mu.Lock()
		if !rt.smOn || rt.smEnabled {
			rt.mu.Unlock()
			return st.streamFail(streamerr.UnsupportedStanzaType, "XEP-0198 <enabled/> without a pending <enable/>")
		}
		rt.smEnabled = true
		// Stanzas written between our <enable/> and this answer are
		// counted already: ask for their ack now.
		ask := len(rt.unacked) > 0 && !rt.askedAck
		rt.askedAck = rt.askedAck || ask
		rt.mu.Unlock()
		if ask {
			st.enqueue(outItem{raw: []byte("<r xmlns='" + wire.NSSM + "'/>")})
		}
	case "failed":
		rt.mu.Lock()
		rt.smOn = false
		clear(rt.unacked)
		rt.unacked, rt.outH = nil, 0
		rt.mu.Unlock()
		s.log.LogAttrs(rt.ctx, slog.LevelDebug, "s2s stream management refused", slog.String("remote", st.remote))
	case "r":
		// XEP-0198 §4: answer with the count of stanzas handled.
		rt.mu.Lock()
		h := rt.inH
		rt.mu.Unlock()
		st.enqueue(outItem{raw: []byte("<a xmlns='" + wire.NSSM + "' h='" + strconv.FormatUint(uint64(h), 10) + "'/>")})
	case "a":
		h, err := strconv.ParseUint(el.AttrValue("h"), 10, 32)
		if err != nil {
			return st.streamFail(streamerr.InvalidXML, "XEP-0198 <a/> with a bad h: "+strconv.Quote(el.AttrValue("h")))
		}
		rt.mu.Lock()
		if !rt.smEnabled && rt.smIn {
			// An ack for stanzas we sent on the peer's stream (bidi):
			// they are not tracked (see smIn), so there is nothing to
			// release.
			rt.mu.Unlock()
			return nil
		}
		if !rt.smEnabled {
			rt.mu.Unlock()
			return st.streamFail(streamerr.UnsupportedStanzaType, "XEP-0198 <a/> on a stream without stream management")
		}
		// h counts modulo 2^32 (XEP-0198 §4).
		n := uint32(h) - rt.ackedH
		if int64(n) > int64(len(rt.unacked)) {
			sent := rt.outH
			rt.mu.Unlock()
			// XEP-0198 §4: acknowledging more than was sent is an
			// undefined-condition stream error with <handled-count-too-high/>.
			app := "<handled-count-too-high xmlns='" + wire.NSSM + "' h='" + strconv.FormatUint(h, 10) + "' send-count='" + strconv.FormatUint(uint64(sent), 10) + "'/>"
			return st.streamFailApp(streamerr.UndefinedCondition, app, "XEP-0198 h acknowledges stanzas never sent")
		}
		clear(rt.unacked[:n])
		rt.unacked = rt.unacked[n:]
		rt.ackedH = uint32(h)
		rt.askedAck = false
		more := len(rt.unacked) > 0
		if more {
			rt.askedAck = true
		}
		rt.mu.Unlock()
		if more {
			st.enqueue(outItem{raw: []byte("<r xmlns='" + wire.NSSM + "'/>")})
		}
	default:
		return st.streamFail(streamerr.UnsupportedStanzaType, "unexpected XEP-0198 element <"+el.Name.Local+"/>")
	}
	return nil
}

// streamFail sends a stream error with cond (RFC 6120 §4.9: then
// </stream:stream>), closes the connection and returns an error wrapping
// cond. Queued stanzas stay queued for the pool to requeue.
func (st *stream) streamFail(cond streamerr.Error, text string) error {
	return st.streamFailApp(cond, "", text)
}

// streamFailApp is streamFail with an application-specific condition
// element (RFC 6120 §4.9.4), raw XML, "" for none.
func (st *stream) streamFailApp(cond streamerr.Error, app, text string) error {
	rt := st.rt
	rt.mu.Lock()
	already := rt.failed
	rt.failed = true
	rt.mu.Unlock()
	// A running writer sees failed and stops; none is started for it.
	if !already {
		_ = st.w.WriteError(&wire.StreamError{Cond: cond, App: app}, text)
	}
	// From tick or a policy re-check, the stream may be hibernating: its
	// reader comes back (and the poller lets go of the connection) before
	// the connection is closed, to end the stream.
	st.srv.wakeStream(st)
	_ = st.conn.Close()
	return &sentError{cond: cond, text: text}
}

// closeGracefully stops new stanzas and lets the writer finish the queue
// and send </stream:stream>.
func (st *stream) closeGracefully() {
	rt := st.rt
	rt.mu.Lock()
	rt.closing = true
	st.srv.startWriterLocked(st)
	rt.mu.Unlock()
}

// waitWriter waits for the writer to finish (once the queue is drained
// after closeGracefully, or on failure). After closeGracefully no other
// writer can start (enqueue refuses, closeGracefully started the last
// one), so the Add of startWriterLocked never races with this Wait; a
// writer stuck in a write ends when the connection is closed (Close, a
// stream error, the peer gone).
func (s *Server) waitWriter(st *stream) {
	st.rt.writers.Wait()
}

// nextTick is the delay to the stream's next timer check: the earliest of
// the inactivity, keepalive and ping deadlines.
func (s *Server) nextTick(st *stream) time.Duration {
	rt := st.rt
	ka, pe := st.keepAlive(), s.pingEvery(st)
	mayHib := s.mayHibernate(st)
	now := s.clock.Now()
	next := time.Duration(1<<63 - 1)
	at := func(base time.Time, d time.Duration) {
		if d > 0 {
			next = min(next, base.Add(d).Sub(now))
		}
	}
	rt.mu.Lock()
	if _, hat := s.hibernateDueLocked(st, now, mayHib); !hat.IsZero() {
		next = min(next, hat.Sub(now))
	}
	at(rt.lastData, st.idle)
	if ka > 0 {
		at(rt.lastSend, ka/2)
		at(rt.lastRecv, ka)
	}
	if rt.pingID != "" {
		at(rt.pingSent, pe)
	} else if st.canPing() {
		at(rt.lastRecv, pe)
	}
	rt.mu.Unlock()
	return max(next, time.Millisecond)
}

// pingEvery is the receive silence after which we ping the peer of st
// (XEP-0199), and the time it gets to answer: half the partner's
// keepalive, capped by Limits.PingInterval; 0 (no pings) without
// keepalive or with a negative PingInterval.
func (s *Server) pingEvery(st *stream) time.Duration {
	ka := st.keepAlive()
	if ka <= 0 || s.limits.PingInterval < 0 {
		return 0
	}
	if s.limits.PingInterval > 0 {
		return min(ka/2, s.limits.PingInterval)
	}
	return ka / 2
}

// canPing reports whether we may send stanzas on st (outbound or bidi).
func (st *stream) canPing() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.send.len() > 0
}

// tick runs the stream's timers: the gateway's StreamInactivityTimeout
// (connection-timeout, REFERENCE §5.5 #50) and, for a partner with
// keepalive (#51-53), the receive-silence limit (nothing at all received,
// whitespace included, for Remote.KeepAlive: connection-timeout), an
// unanswered ping (connection-timeout), an XEP-0199 ping after receive
// silence and a whitespace keepalive (RFC 6120 §4.6.1) after KeepAlive/2
// of send silence, so that a live peer is always heard from in time.
func (s *Server) tick(st *stream) {
	rt := st.rt
	if rt.ctx.Err() != nil {
		return
	}
	ka, pe := st.keepAlive(), s.pingEvery(st)
	mayHib := s.mayHibernate(st)
	now := s.clock.Now()
	rt.mu.Lock()
	if n := st.r.LastActivity(); n != rt.bytesIn {
		// Bytes arrived (whitespace keepalives included) since the last
		// check: the peer is alive.
		rt.bytesIn = n
		if n != rt.bytesElem {
			// Whitespace came after the last element (elements set
			// lastRecv themselves): it arrived since the last check.
			rt.lastRecv = now
		}
		rt.pingID = ""
	}
	// Idle means no XML exchanged: whitespace keepalives in either
	// direction keep the connection up but do not make it used.
	idle := st.idle > 0 && now.Sub(rt.lastData) >= st.idle
	silent := ka > 0 && now.Sub(rt.lastRecv) >= ka
	pingLost := rt.pingID != "" && pe > 0 && now.Sub(rt.pingSent) >= pe
	var ping, wsp bool
	if !idle && !silent && !pingLost {
		ping = rt.pingID == "" && pe > 0 && now.Sub(rt.lastRecv) >= pe
		wsp = ka > 0 && now.Sub(rt.lastSend) >= ka/2
		if due, _ := s.hibernateDueLocked(st, now, mayHib); due {
			// Nothing received for hibernateAfter: the reader gives its
			// goroutine up (hibernate.go).
			s.requestHibernateLocked(st)
		}
	}
	rt.mu.Unlock()
	switch {
	case idle:
		// RFC 6120 §4.9.3.4.
		_ = st.streamFail(streamerr.ConnectionTimeout, "no traffic for "+st.idle.String()+" (stream inactivity timeout)")
		return
	case silent:
		_ = st.streamFail(streamerr.ConnectionTimeout, "nothing received for "+ka.String()+" (keepalive interval)")
		return
	case pingLost:
		_ = st.streamFail(streamerr.ConnectionTimeout, "no answer to a ping in "+pe.String())
		return
	}
	if ping && st.canPing() {
		s.sendPing(st, now)
	}
	if wsp {
		// Whitespace keepalive (RFC 6120 §4.6.1); counted as a send.
		if err := st.w.WriteWhitespace(); err == nil {
			rt.mu.Lock()
			rt.lastSend = now
			rt.mu.Unlock()
		}
	}
	if rt.ctx.Err() == nil {
		d := s.nextTick(st)
		rt.mu.Lock()
		if rt.timer != nil {
			rt.timer.Reset(d)
		}
		rt.mu.Unlock()
	}
}

// sendPing sends an XEP-0199 ping from one of the stream's send pairs.
func (s *Server) sendPing(st *stream, now time.Time) {
	st.mu.Lock()
	var p pair
	for q := range st.send.all() {
		p = q
		break
	}
	st.mu.Unlock()
	if p.local == "" {
		return
	}
	id := "ping-" + wire.NewID()
	raw := []byte("<iq xmlns='jabber:server' type='get'")
	raw = appendAttr(raw, "id", id)
	raw = appendAttr(raw, "from", p.local)
	raw = appendAttr(raw, "to", p.remote)
	raw = append(raw, "><ping xmlns='"+wire.NSPing+"'/></iq>"...)
	st.rt.mu.Lock()
	st.rt.pingID, st.rt.pingSent = id, now
	st.rt.mu.Unlock()
	s.run.mu.Lock()
	s.run.pings[id] = st
	s.run.mu.Unlock()
	st.enqueue(outItem{raw: raw})
}

// endStream tears st down after its read loop ended: closes the
// connection, stops the writer and timers, releases negotiation state,
// unregisters it and gives unsent (and, with XEP-0198, unacknowledged)
// stanzas back to the pool.
func (s *Server) endStream(st *stream, err error) {
	rt := st.rt
	rt.mu.Lock()
	rt.closing = true
	rt.ended = true // no writer starts after this: Wait below is safe
	if rt.timer != nil {
		rt.timer.Stop()
	}
	rt.mu.Unlock()
	_ = st.conn.Close()
	rt.cancel()
	rt.writers.Wait()
	st.mu.Lock()
	st.closed = true
	st.mu.Unlock()
	st.closeNeg(err)
	rt.mu.Lock()
	var back []*Stanza
	if (rt.smOn || rt.smEnabled) && !rt.cleanEnd {
		// XEP-0198 §4: not acknowledged, so maybe not handled: send again.
		// That includes stanzas written after our <enable/> while its
		// <enabled/> had not arrived yet (smOn): the writer tracked them
		// instead of giving them back.
		back = append(back, rt.unacked...)
	}
	for _, it := range rt.q {
		if it.stz != nil {
			back = append(back, it.stz)
		}
	}
	rt.q, rt.unacked, rt.endErr = nil, nil, err
	pingID := rt.pingID
	rt.mu.Unlock()
	if pingID != "" {
		s.run.mu.Lock()
		delete(s.run.pings, pingID)
		s.run.mu.Unlock()
	}
	s.unregister(st)
	s.logClosed(st, err)
	s.streamLost(st, back, err)
	s.streamEvent(StreamClosed, st, err)
}

// logNegotiated logs the negotiated outcome of a stream once.
func (s *Server) logNegotiated(st *stream) {
	info := s.streamInfo(st)
	s.log.LogAttrs(st.rt.ctx, slog.LevelInfo, "s2s stream established",
		slog.String("direction", info.Direction.String()),
		slog.String("local", info.Local), slog.String("remote", info.Remote), slog.String("partner", info.Partner),
		slog.String("remote_addr", info.RemoteAddr), slog.String("local_addr", localAddr(st)),
		slog.String("tls", info.TLSVersion), slog.String("auth", info.Auth.String()),
		slog.String("identity", info.Identity), slog.Bool("bidi", info.Bidi))
}

func (s *Server) logClosed(st *stream, err error) {
	lvl := slog.LevelInfo
	if err != nil {
		lvl = slog.LevelWarn
	}
	s.log.LogAttrs(context.Background(), lvl, "s2s stream closed",
		slog.String("direction", st.dir.String()), slog.String("local", st.local),
		slog.String("remote", st.remote), slog.Uint64("stanzas_in", st.rt.in.Load()),
		slog.Uint64("stanzas_out", st.rt.out.Load()), slog.Any("err", err))
}

func localAddr(st *stream) string {
	if st.conn == nil || st.conn.LocalAddr() == nil {
		return ""
	}
	return st.conn.LocalAddr().String()
}
