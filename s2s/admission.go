package s2s

import (
	streamerr "mellium.im/xmpp/stream"
)

// watchPolicy re-checks the streams and queues at every change of
// Server.Policy (REFERENCE §5.1 #16) until the Server stops.
func (s *Server) watchPolicy() {
	r := &s.run
	ch := s.Policy.Changed()
	for {
		select {
		case <-ch:
			// Take the next change's channel before checking, so that a
			// change made while we check is not missed.
			ch = s.Policy.Changed()
			s.recheck()
		case <-r.shutdown:
			return
		case <-r.ctx.Done():
			return
		}
	}
}

// recheck closes, with the policy-violation stream error, every
// established stream with a domain the policy no longer admits (or no
// longer counts as the same partner), and bounces the stanzas queued for
// such domains with the refusal's stanza error. Streams still negotiating
// are checked when they complete (register, runStream). Changed
// settings apply to new streams only. The policy is asked once per
// remote domain; only the streams of refused domains, and those carrying
// pairs for more than one domain, are looked at.
func (s *Server) recheck() {
	ctx := s.run.ctx
	r := &s.run
	refusal := make(map[string]error)
	check := func(domain string) error {
		err, ok := refusal[domain]
		if !ok {
			_, err = s.remote(domain)
			refusal[domain] = err
		}
		return err
	}
	r.mu.Lock()
	domains := make([]string, 0, len(r.byRemote))
	for d := range r.byRemote {
		domains = append(domains, d)
	}
	concerned := make(map[*stream]struct{}, len(r.multi))
	for st := range r.multi {
		concerned[st] = struct{}{}
	}
	r.mu.Unlock()
	for _, d := range domains {
		if check(d) == nil {
			continue
		}
		r.mu.Lock()
		for _, st := range r.byRemote[d] {
			concerned[st] = struct{}{}
		}
		r.mu.Unlock()
	}
	for st := range concerned {
		err := s.streamDenied(st)
		if err == nil {
			continue
		}
		st.rt.mu.Lock()
		running := st.rt.running
		st.rt.mu.Unlock()
		if !running {
			continue
		}
		s.refused(ctx, "established stream", st.remote, err)
		_ = st.streamFail(streamerr.PolicyViolation, err.Error())
	}
	for _, op := range s.pairSnapshot() {
		err := check(op.p.remote)
		if err == nil {
			continue
		}
		op.mu.Lock()
		q := op.queue
		op.queue = nil
		s.run.queued.Add(-int64(len(q)))
		if op.timer != nil && !op.dialing {
			op.timer.Stop()
		}
		op.failures = 0
		s.prune(op)
		op.mu.Unlock()
		if len(q) > 0 {
			s.refused(ctx, "queued stanzas", op.p.remote, err)
			s.bounce(q, bounceError(op.p.remote, err))
		}
	}
	s.notifyPool()
}

// streamDenied returns the refusal of the policy for one of st's remote
// domains (the stream's own, and every domain authorized on it), or nil
// when all are still admitted and still belong to the stream's partner.
func (s *Server) streamDenied(st *stream) error {
	first := st.remote
	if st.rem != nil {
		first = st.rem.Domain
	}
	if _, err := s.remote(first); err != nil {
		return err
	}
	st.mu.Lock()
	domains := make(map[string]bool, 1)
	for p := range st.send.all() {
		domains[p.remote] = true
	}
	for p := range st.recv.all() {
		domains[p.remote] = true
	}
	st.mu.Unlock()
	delete(domains, first)
	for d := range domains {
		if _, err := s.piggybackSettings(first, d); err != nil {
			return err
		}
	}
	return nil
}
