package federation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/xmppfed/xmppfed/certs"
	"github.com/xmppfed/xmppfed/internal/wire"
	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
)

// selfTestPoll is how often SelfTest looks at the pool's streams while the
// ping is on its way.
const selfTestPoll = 20 * time.Millisecond

// OK reports whether every stage passed (and at least one ran).
func (r *SelfTestReport) OK() bool { return r != nil && allOK(r.Stages) }

// SelfTest sends an XEP-0199 ping from a local domain (or user) to a
// remote domain (or JID) over the real path — policy, DNS, TCP, TLS,
// authentication, delivery — and waits for the reply (REFERENCE §5.9 #96,
// the Test-CsXmppIM equivalent), reporting each stage.
//
// The stages are "policy" (the remote domain's admission and, for a user,
// Policy.CheckUser), "dns", "connect/auth" (the stream the pool uses, an
// existing one or the one the ping opens, with its auth method), "delivery"
// (the ping left on that stream rather than being bounced) and "reply": a
// result, or the error condition the remote returned. An error reply is a
// pass of the path, with its condition in Detail (a service-unavailable
// from a user who does not exist shows that the remote server was reached
// and answered). A failed stage ends the test.
//
// The test uses the Server's own pool and streams, so the Server must be
// usable (Backend set, not closed). It is bounded by ctx, and by three times
// Limits.DialTimeout (zero: 10 s) for each of connecting and the reply when
// ctx has no deadline. The error is ErrServerClosed, a missing Backend, or
// ctx's when it ended before the test completed (with the report so far);
// a failed stage is not an error.
func (s *Server) SelfTest(ctx context.Context, from, to jid.JID) (*SelfTestReport, error) {
	rep := &SelfTestReport{From: from, To: to}
	if err := s.ready(); err != nil {
		return rep, err
	}
	if s.isClosed() {
		return rep, ErrServerClosed
	}
	step := s.checkStep()
	caller := ctx // its end is the error returned; ours only bounds the test
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 6*step)
		defer cancel()
	}
	remote, err := certs.NormalizeDomain(to.Domainpart())
	if err != nil {
		remote = to.Domainpart()
	}
	local, err := certs.NormalizeDomain(from.Domainpart())
	if err != nil {
		local = from.Domainpart()
	}

	// policy: the remote domain, our domain and the local user.
	var rem *policy.Remote
	stage(&rep.Stages, "policy", remote, func(st *Stage) {
		if !s.isLocalDomain(local) {
			st.Err = fmt.Errorf("federation: %q is not one of the Server's Domains", from.Domainpart())
			return
		}
		if s.Policy == nil {
			st.Err = errors.New("federation: the Server has no Policy, so every remote domain is refused")
			return
		}
		r, err := s.Policy.Remote(remote)
		if err != nil {
			st.Err = err
			return
		}
		if from.Localpart() != "" {
			if err := s.Policy.CheckUser(ctx, from.Bare()); err != nil {
				st.Err = err
				return
			}
		}
		rem = r
		st.Detail = describeRemote(r)
	})
	if rem == nil {
		return rep, caller.Err()
	}

	// dns: what the pool will look up (the pool caches it).
	c := &checker{srv: s, local: local, step: step}
	crep := &CheckReport{Domain: remote}
	if _, ok := c.dnsStage(ctx, crep, rem); !ok {
		rep.Stages = append(rep.Stages, crep.Stages...)
		return rep, caller.Err()
	}
	rep.Stages = append(rep.Stages, crep.Stages...)

	// connect/auth, delivery, reply: the ping goes through the pool; the
	// stream it uses is observed in the pool's snapshot.
	type answer struct {
		st  *s2s.Stanza
		err error
	}
	done := make(chan answer, 1)
	start := time.Now()
	ictx, icancel := context.WithCancel(ctx)
	defer icancel()
	go func() {
		st, err := s.sendIQ(ictx, from, to, []byte("<ping xmlns='"+wire.NSPing+"'/>"))
		done <- answer{st, err}
	}()
	connect := Stage{Name: "connect/auth", Target: remote}
	var a answer
	got, found := false, false
	tick := time.NewTicker(selfTestPoll)
	defer tick.Stop()
	connectBy := time.NewTimer(3 * step)
	defer connectBy.Stop()
	for !got && !found {
		select {
		case a = <-done:
			got = true
		case <-tick.C:
		case <-connectBy.C:
			a, got = answer{err: fmt.Errorf("no stream to %s within %s", remote, 3*step)}, false
			connect.Err = a.err
		}
		if connect.Err != nil {
			break
		}
		if si := s.sendStream(local, remote); si != nil {
			found = true
			connect.Detail = describeStream(si)
		}
	}
	connect.Duration = time.Since(start)
	if connect.Err == nil && !found {
		// The ping came back before a stream showed: a bounce, a refusal,
		// or ctx's end.
		connect.Err = a.err
		if lf, _ := s.run.s2s.LastFailure(remote); lf != nil && isBounce(a.err) {
			connect.Err = lf
		}
		if connect.Err == nil {
			connect.Err = errors.New("answered without a stream")
		}
	}
	connect.OK = connect.Err == nil
	rep.Stages = append(rep.Stages, connect)
	if !connect.OK {
		if !got {
			icancel()
			<-done
		}
		return rep, caller.Err()
	}
	if !got {
		select {
		case a = <-done:
		case <-ctx.Done():
			a = <-done
		}
	}

	delivery := Stage{Name: "delivery", Target: to.String(), Duration: time.Since(start)}
	switch {
	case a.st != nil:
		delivery.Detail = "the ping reached " + remote
	case isBounce(a.err):
		delivery.Err = a.err
		if lf, _ := s.run.s2s.LastFailure(remote); lf != nil {
			delivery.Err = fmt.Errorf("%w: %w", a.err, lf)
		}
	case errors.Is(a.err, context.DeadlineExceeded) || errors.Is(a.err, context.Canceled):
		// Sent on an established stream, never answered nor bounced.
		delivery.Detail = "the ping was written to the stream"
	default:
		delivery.Err = a.err
	}
	delivery.OK = delivery.Err == nil
	rep.Stages = append(rep.Stages, delivery)
	if !delivery.OK {
		return rep, caller.Err()
	}

	reply := Stage{Name: "reply", Target: to.String(), Duration: time.Since(start)}
	switch {
	case a.st == nil:
		reply.Err = fmt.Errorf("no answer: %w", a.err)
	case a.st.Type == "result":
		reply.Detail = "result (pong)"
	default:
		// RFC 6120 §8.3: the remote side answered with an error; the path
		// works, the condition says what the far end thinks.
		cond := replyCondition(a.st)
		reply.Detail = "error reply " + string(cond) + " from " + a.st.From.String() + ": the path works"
		if cond == stanza.ServiceUnavailable && to.Localpart() != "" {
			reply.Detail += " (the user may not exist or may not answer pings)"
		}
	}
	reply.OK = reply.Err == nil
	rep.Stages = append(rep.Stages, reply)
	if err := caller.Err(); err != nil && !reply.OK {
		return rep, err
	}
	return rep, nil
}

// isBounce reports whether err is a stanza error the pool bounced with.
func isBounce(err error) bool {
	var se stanza.Error
	return errors.As(err, &se)
}

// isLocalDomain reports whether domain (an A-label) is one of Domains.
func (s *Server) isLocalDomain(domain string) bool {
	for _, d := range s.Domains {
		if n, err := certs.NormalizeDomain(d); err == nil && n == domain {
			return true
		}
	}
	return false
}

// sendStream returns the established stream that carries stanzas from
// local to remote, or nil.
func (s *Server) sendStream(local, remote string) *s2s.StreamInfo {
	pair := local + "->" + remote
	for _, si := range s.run.s2s.Stats().Streams {
		for _, p := range si.SendPairs {
			if p == pair {
				return &si
			}
		}
	}
	return nil
}

// describeStream words a stream's negotiated outcome.
func describeStream(si *s2s.StreamInfo) string {
	tlsv := si.TLSVersion
	if tlsv == "" {
		tlsv = "no TLS"
	}
	d := fmt.Sprintf("%s stream, %s over %s", si.Direction, si.Auth, tlsv)
	if si.RemoteAddr != "" {
		d += ", peer " + si.RemoteAddr
	}
	if si.Identity != "" {
		d += ", identity " + si.Identity
	}
	if si.Bidi {
		d += ", bidi"
	}
	return d
}
