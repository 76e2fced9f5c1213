package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmppfed/xmppfed/policy"
	"github.com/xmppfed/xmppfed/s2s"
)

// estVariant is one way of establishing a stream.
type estVariant struct {
	name   string
	set    policy.Settings
	direct bool
	auth   s2s.AuthMethod
}

// estVariants returns the establishment variants measured, in order.
func estVariants() []estVariant {
	return []estVariant{
		{"sasl-external/starttls", policy.Settings{SASL: policy.Optional}, false, s2s.AuthSASLExternal},
		{"sasl-external/directtls", policy.Settings{SASL: policy.Optional}, true, s2s.AuthSASLExternal},
		{"dialback/starttls", policy.Settings{SASL: policy.NotSupported}, false, s2s.AuthDialback},
		{"dialback/directtls", policy.Settings{SASL: policy.NotSupported}, true, s2s.AuthDialback},
	}
}

// fleet is a host s2s.Server and a peer s2s.Server that serves many
// domains (d0.<parent>, d1.<parent>, ...) under open federation: each
// domain the host sends to is a new stream. The peer records when the
// stanza with id k arrives.
type fleet struct {
	host, peer *s2s.Server
	hostDomain string
	parent     string
	stamps     []atomic.Int64 // send time of stanza k
	lats       []atomic.Int64 // its latency
	delivered  chan int       // k of each delivered stanza
	inbound    atomic.Int64   // streams established at the peer
	wrongAuth  atomic.Int64   // ... with another method than expected
}

// newFleet starts the pair for n remote domains, published in DNS as
// direct TLS or STARTTLS.
func newFleet(e *env, tag string, n int, set policy.Settings, direct bool, auth s2s.AuthMethod) (*fleet, error) {
	f := &fleet{
		hostDomain: "host." + tag + ".example",
		parent:     "peer." + tag + ".example",
		stamps:     make([]atomic.Int64, n),
		lats:       make([]atomic.Int64, n),
		delivered:  make(chan int, n),
	}
	domains := make([]string, n)
	for i := range domains {
		domains[i] = f.domain(i)
	}
	pcert, err := e.wildcard(f.parent)
	if err != nil {
		return nil, err
	}
	f.peer, err = e.s2sNode(domains, pcert, set, direct, func(s *s2s.Server) {
		s.Handler = s2s.HandlerFunc(func(_ context.Context, st *s2s.Stanza) error {
			k, err := strconv.Atoi(st.ID)
			if err != nil || k < 0 || k >= n {
				return nil
			}
			f.lats[k].Store(now() - f.stamps[k].Load())
			select {
			case f.delivered <- k:
			default:
			}
			return nil
		})
		s.StreamEvent = func(ev s2s.StreamEvent) {
			if ev.Type == s2s.StreamEstablished && ev.Direction == s2s.Inbound {
				f.inbound.Add(1)
				if ev.Auth != auth {
					f.wrongAuth.Add(1)
				}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	hcert, err := e.ca.IssueDomain(f.hostDomain)
	if err != nil {
		return nil, err
	}
	// The host listens too: dialback verifies through it.
	f.host, err = e.s2sNode([]string{f.hostDomain}, hcert, set, false, nil)
	return f, err
}

// state describes the fleet for an error message: streams, queue and the
// first stanza sent but not delivered.
func (f *fleet) state() string {
	st := f.host.Stats()
	s := fmt.Sprintf("%d streams established at the peer, %d at the host, %d queued", f.inbound.Load(), len(st.Streams), st.Queued)
	for i := range f.stamps {
		if f.stamps[i].Load() != 0 && f.lats[i].Load() == 0 {
			err, _ := f.host.LastFailure(f.domain(i))
			return s + fmt.Sprintf("; stanza %d to %s not delivered (last failure: %v)", i, f.domain(i), err)
		}
	}
	return s
}

func (f *fleet) domain(i int) string { return "d" + strconv.Itoa(i) + "." + f.parent }

// stanzas returns, for each remote domain, the stanza with id i to a user
// there.
func (f *fleet) stanzas(n int) ([]*s2s.Stanza, error) {
	sts := make([]*s2s.Stanza, n)
	for i := range sts {
		var err error
		if sts[i], err = chat("u@"+f.hostDomain, "v@"+f.domain(i), strconv.Itoa(i)); err != nil {
			return nil, err
		}
	}
	return sts, nil
}

// send stamps and sends stanza i.
func (f *fleet) send(ctx context.Context, st *s2s.Stanza, i int) error {
	f.stamps[i].Store(now())
	return f.host.Send(ctx, st)
}

// next waits for the next delivery.
func (f *fleet) next(ctx context.Context) error {
	select {
	case <-f.delivered:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for a delivery: %w (%s)", ctx.Err(), f.state())
	}
}

// concurrently opens the streams for sts[from:to], workers at a time
// (each worker sends, then waits for one delivery), and returns when all
// are delivered.
func (f *fleet) concurrently(ctx context.Context, sts []*s2s.Stanza, from, to, workers int) error {
	var next atomic.Int64
	next.Store(int64(from))
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					errs <- nil
					return
				}
				if err := f.send(ctx, sts[i], i); err != nil {
					errs <- err
					return
				}
				if err := f.next(ctx); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (f *fleet) latencies(from, to int) []time.Duration {
	d := make([]time.Duration, 0, to-from)
	for i := from; i < to; i++ {
		d = append(d, time.Duration(f.lats[i].Load()))
	}
	return d
}

// runEstablish is scenario 3: per variant, n streams one at a time (time
// to the first delivered stanza), then n more, -workers at a time
// (streams per second).
func runEstablish(ctx context.Context, c *config, n int, _ *[]string) ([]sample, error) {
	var out []sample
	for vi, v := range estVariants() {
		got, err := establishVariant(ctx, c, n, "e"+strconv.Itoa(vi), v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.name, err)
		}
		out = append(out, got...)
	}
	return out, nil
}

func establishVariant(ctx context.Context, c *config, n int, tag string, v estVariant) ([]sample, error) {
	e, err := newEnv()
	if err != nil {
		return nil, err
	}
	defer e.close()
	f, err := newFleet(e, tag, 2*n, v.set, v.direct, v.auth)
	if err != nil {
		return nil, err
	}
	sts, err := f.stanzas(2 * n)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	for i := range n {
		if err := f.send(ctx, sts[i], i); err != nil {
			return nil, err
		}
		if err := f.next(ctx); err != nil {
			return nil, err
		}
	}
	seq := time.Since(t0)
	t1 := time.Now()
	if err := f.concurrently(ctx, sts, n, 2*n, c.workers); err != nil {
		return nil, err
	}
	par := time.Since(t1)
	if got := f.inbound.Load(); got != int64(2*n) {
		return nil, fmt.Errorf("%d streams established at the peer for %d domains", got, 2*n)
	}
	if w := f.wrongAuth.Load(); w != 0 {
		return nil, fmt.Errorf("%d of %d streams authenticated otherwise than with %v", w, 2*n, v.auth)
	}
	seqLat, parLat := f.latencies(0, n), f.latencies(n, 2*n)
	return []sample{
		{v.name, "first stanza p50 (1 at a time)", "ms", ms(percentile(seqLat, 50))},
		{v.name, "first stanza p99 (1 at a time)", "ms", ms(percentile(seqLat, 99))},
		{v.name, "new streams (1 at a time)", "streams/s", float64(n) / seq.Seconds()},
		{v.name, fmt.Sprintf("new streams (%d at a time)", c.workers), "streams/s", float64(n) / par.Seconds()},
		{v.name, fmt.Sprintf("first stanza p50 (%d at a time)", c.workers), "ms", ms(percentile(parLat, 50))},
	}, nil
}
