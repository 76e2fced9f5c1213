package main

import (
	"context"
	"sync"

	"github.com/xmppfed/xmppfed/federation"
)

// counters is a federation.Metrics that counts events by name ("failed
// policy", "denied not_partner"), so that the demo can check what a
// server saw. A real host would use package promfed or its own adapter.
type counters struct {
	mu      sync.Mutex
	n       map[string]int
	changed chan struct{} // closed, and replaced, at each count
}

var _ federation.Metrics = (*counters)(nil)

func newCounters() *counters {
	return &counters{n: make(map[string]int), changed: make(chan struct{})}
}

func (c *counters) inc(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[key]++
	close(c.changed)
	c.changed = make(chan struct{})
}

// wait waits until key has been counted at least once.
func (c *counters) wait(ctx context.Context, key string) error {
	for {
		c.mu.Lock()
		n, ch := c.n[key], c.changed
		c.mu.Unlock()
		if n > 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// StreamOpened implements federation.Metrics.
func (c *counters) StreamOpened(direction, auth string) { c.inc("opened " + direction + " " + auth) }

// StreamClosed implements federation.Metrics.
func (c *counters) StreamClosed(direction, auth string) { c.inc("closed " + direction + " " + auth) }

// Stanza implements federation.Metrics.
func (c *counters) Stanza(direction, partner string) { c.inc("stanza " + direction + " " + partner) }

// Bounced implements federation.Metrics.
func (c *counters) Bounced(condition string) { c.inc("bounced " + condition) }

// Denied implements federation.Metrics.
func (c *counters) Denied(rule string) { c.inc("denied " + rule) }

// NegotiationFailed implements federation.Metrics.
func (c *counters) NegotiationFailed(step string) { c.inc("failed " + step) }

// QueueDepth implements federation.Metrics; the demo does not use it.
func (c *counters) QueueDepth(int) {}
