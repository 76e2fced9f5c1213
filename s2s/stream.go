package s2s

import (
	"crypto/tls"
	"iter"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/policy"
)

// Direction says which side opened a stream's TCP connection.
type Direction uint8

// Directions.
const (
	// Inbound: the remote server connected to us.
	Inbound Direction = iota + 1
	// Outbound: we connected to the remote server.
	Outbound
)

// String returns "inbound" or "outbound".
func (d Direction) String() string {
	switch d {
	case Inbound:
		return "inbound"
	case Outbound:
		return "outbound"
	}
	return "Direction(" + strconv.Itoa(int(d)) + ")"
}

// AuthMethod says how a domain pair was authenticated on a stream.
type AuthMethod uint8

// Authentication methods.
const (
	// AuthNone: not authenticated.
	AuthNone AuthMethod = iota
	// AuthSASLExternal: SASL EXTERNAL with the peer's certificate (XEP-0178).
	AuthSASLExternal
	// AuthDialback: Server Dialback (XEP-0220), including the XEP-0344
	// shortcut taken when the peer's certificate already verifies.
	AuthDialback
)

// String returns "none", "sasl-external" or "dialback".
func (m AuthMethod) String() string {
	switch m {
	case AuthNone:
		return "none"
	case AuthSASLExternal:
		return "sasl-external"
	case AuthDialback:
		return "dialback"
	}
	return "AuthMethod(" + strconv.Itoa(int(m)) + ")"
}

// pair is an authenticated (local domain, remote domain) pair; both are
// A-labels without a trailing dot.
type pair struct{ local, remote string }

// stream is one server-to-server stream over one connection, from
// negotiation to close. Fields above mu are set during negotiation, by one
// goroutine, before the stream is shared; the rest is guarded by mu.
type stream struct {
	srv     *Server
	dir     Direction
	conn    net.Conn             // the current transport: TLS after STARTTLS or direct TLS
	tls     *tls.ConnectionState // nil without TLS
	r       *wire.Reader
	w       *wire.Writer
	id      string // the stream id: ours when inbound, the peer's when outbound
	local   string // our domain in the (last) stream header
	remote  string // the peer's domain in the (last) stream header
	peer    *certs.Result
	peerErr error // why the peer's certificate did not verify for remote (nil if it did or none was checked)
	// verify are the options the peer's certificate is checked with on an
	// outbound stream: Server.Verify plus, when DNSSEC vouches for the SRV
	// answer, the SRV target as a reference identity and its DANE records.
	verify certs.VerifyOptions
	// rem is the policy for remote when the stream was admitted (nil
	// before: an inbound stream without 'from' until its first dialback
	// request); set says how to negotiate with it (rem.Settings,
	// Effective) and partner is the key the stream is counted under.
	rem     *policy.Remote
	set     policy.Settings
	partner string
	// Gateway values read when the stream began: the stanza size limit
	// (advertised with XEP-0478) and the inactivity timeout (0: none).
	maxBytes int
	idle     time.Duration
	bidi     bool // XEP-0288 negotiated: the connection carries both directions
	created  time.Time

	// neg and rt hold negotiation and runtime state; their types live
	// with the code that uses them (negotiate*.go, dialback.go; run*.go).
	neg *negState
	rt  *runState

	mu sync.Mutex
	// send holds the pairs we may send stanzas for on this stream (from
	// local to remote); recv the pairs the peer may send for (from remote
	// to local). An outbound stream fills send, an inbound one recv; bidi
	// fills both.
	send, recv pairSet
	closed     bool
}

// pairSet is a set of authenticated pairs, each with the method that
// authenticated it. Nearly every stream carries one pair each way: the
// first is kept inline, a map holds only the others (piggybacked domains).
// The zero value is empty.
type pairSet struct {
	first  pair
	firstM AuthMethod
	some   bool                // first is set
	more   map[pair]AuthMethod // the pairs after the first, nil if none
}

// len returns the number of pairs in the set.
func (s *pairSet) len() int {
	if !s.some {
		return 0
	}
	return 1 + len(s.more)
}

// has reports whether p is in the set.
func (s *pairSet) has(p pair) bool {
	if !s.some {
		return false
	}
	if s.first == p {
		return true
	}
	_, ok := s.more[p]
	return ok
}

// add puts p in the set with m unless it is there already (the first
// method stays); it reports whether p was added.
func (s *pairSet) add(p pair, m AuthMethod) bool {
	switch {
	case s.has(p):
		return false
	case !s.some:
		s.first, s.firstM, s.some = p, m, true
	default:
		if s.more == nil {
			s.more = make(map[pair]AuthMethod)
		}
		s.more[p] = m
	}
	return true
}

// all yields every pair of the set with its method, the first one first.
func (s *pairSet) all() iter.Seq2[pair, AuthMethod] {
	return func(yield func(pair, AuthMethod) bool) {
		if !s.some || !yield(s.first, s.firstM) {
			return
		}
		for p, m := range s.more {
			if !yield(p, m) {
				return
			}
		}
	}
}

// admit records that the policy admitted the stream's remote domain with
// rem: the partner's settings and keys apply to it. Negotiation calls it
// before the stream is shared.
func (st *stream) admit(rem *policy.Remote) {
	st.rem = rem
	st.set = rem.Settings.Effective()
	st.partner = partnerKey(rem)
}

// keepAlive is the partner's receive-silence limit (0: no keepalive).
func (st *stream) keepAlive() time.Duration {
	if st.rem == nil || st.rem.KeepAlive < 0 {
		return 0
	}
	return st.rem.KeepAlive
}

// authorize records that stanzas from remote to local (recv) or from local
// to remote (send) are authenticated on st with method m.
func (st *stream) authorize(p pair, m AuthMethod, send bool) {
	st.mu.Lock()
	set := &st.recv
	if send {
		set = &st.send
	}
	added := set.add(p, m)
	st.mu.Unlock()
	if added && st.srv != nil {
		// The Server's indexes (lock order: the Server's mu is never
		// taken under st.mu).
		st.srv.indexPair(st, p, send)
	}
}

// canSend reports whether we may send stanzas for p on st.
func (st *stream) canSend(p pair) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.send.has(p) && !st.closed
}

// canRecv reports whether the peer may send stanzas for p on st.
func (st *stream) canRecv(p pair) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.recv.has(p)
}
