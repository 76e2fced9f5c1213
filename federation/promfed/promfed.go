package promfed

import (
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// MaxPartners is the number of distinct partner label values kept; later
// partners are counted as OtherPartner.
const MaxPartners = 1000

// OtherPartner is the partner label of the partners past MaxPartners.
const OtherPartner = "other"

// Metrics implements federation.Metrics with Prometheus collectors
// registered on the Registerer given to New. Its methods are safe for
// concurrent use and never block for long.
type Metrics struct {
	streams     *prometheus.GaugeVec
	stanzas     *prometheus.CounterVec
	bounces     *prometheus.CounterVec
	denials     *prometheus.CounterVec
	negotiation *prometheus.CounterVec
	queue       prometheus.Gauge

	mu       sync.Mutex
	partners map[string]struct{} // partner label values in use (at most MaxPartners)
}

// New creates the collectors, registers them on reg under namespace (which
// may be empty; else a valid metric name prefix such as "xmppfed") and
// returns them as a federation.Metrics. It fails when reg is nil, when
// namespace is not a valid metric name part, or when a collector of the same
// name is registered already (then none of them stays registered).
func New(reg prometheus.Registerer, namespace string) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("promfed: nil Registerer")
	}
	if !validNamespace(namespace) {
		return nil, fmt.Errorf("promfed: namespace %q is not a metric name prefix ([a-zA-Z_][a-zA-Z0-9_]*)", namespace)
	}
	m := &Metrics{
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Name: "streams_open",
			Help: "Established server-to-server streams, by direction and authentication method.",
		}, []string{"direction", "auth"}),
		stanzas: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "stanzas_total",
			Help: "Stanzas received from (in) and sent to (out) partners.",
		}, []string{"direction", "partner"}),
		bounces: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "bounces_total",
			Help: "Stanzas bounced to their local sender, by stanza error condition.",
		}, []string{"condition"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "policy_denials_total",
			Help: "Refusals by the federation policy, by rule.",
		}, []string{"rule"}),
		negotiation: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "negotiation_failures_total",
			Help: "Streams that failed to establish, by negotiation step.",
		}, []string{"step"}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "queue_depth",
			Help: "Stanzas waiting in the outbound pool.",
		}),
		partners: make(map[string]struct{}),
	}
	cs := []prometheus.Collector{m.streams, m.stanzas, m.bounces, m.denials, m.negotiation, m.queue}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("promfed: %w", err)
		}
	}
	return m, nil
}

// StreamOpened increments streams_open{direction,auth}.
func (m *Metrics) StreamOpened(direction, auth string) {
	m.streams.WithLabelValues(direction, auth).Inc()
}

// StreamClosed decrements streams_open{direction,auth}.
func (m *Metrics) StreamClosed(direction, auth string) {
	m.streams.WithLabelValues(direction, auth).Dec()
}

// Stanza increments stanzas_total{direction,partner}; past MaxPartners
// distinct partners, new ones count as "other".
func (m *Metrics) Stanza(direction, partner string) {
	m.stanzas.WithLabelValues(direction, m.partnerLabel(partner)).Inc()
}

// partnerLabel returns partner while fewer than MaxPartners distinct values
// are in use (or partner is one of them), else OtherPartner.
func (m *Metrics) partnerLabel(partner string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.partners[partner]; ok {
		return partner
	}
	if len(m.partners) >= MaxPartners {
		return OtherPartner
	}
	m.partners[partner] = struct{}{}
	return partner
}

// Bounced increments bounces_total{condition}.
func (m *Metrics) Bounced(condition string) {
	m.bounces.WithLabelValues(condition).Inc()
}

// Denied increments policy_denials_total{rule}.
func (m *Metrics) Denied(rule string) {
	m.denials.WithLabelValues(rule).Inc()
}

// NegotiationFailed increments negotiation_failures_total{step}.
func (m *Metrics) NegotiationFailed(step string) {
	m.negotiation.WithLabelValues(step).Inc()
}

// QueueDepth sets queue_depth to n.
func (m *Metrics) QueueDepth(n int) {
	m.queue.Set(float64(n))
}

// validNamespace reports whether ns is empty or a classic metric name part:
// [a-zA-Z_][a-zA-Z0-9_]* (the names every Prometheus version and query
// accepts without quoting).
func validNamespace(ns string) bool {
	for i, c := range ns {
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
