package promfed_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/federation/promfed"
)

var _ federation.Metrics = (*promfed.Metrics)(nil)

func newMetrics(t *testing.T) (*promfed.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := promfed.New(reg, "xmppfed")
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func TestCounters(t *testing.T) {
	m, reg := newMetrics(t)
	m.StreamOpened("inbound", "sasl-external")
	m.StreamOpened("inbound", "sasl-external")
	m.StreamOpened("outbound", "dialback")
	m.StreamClosed("inbound", "sasl-external")
	m.Stanza("in", "fabrikam.com")
	m.Stanza("in", "fabrikam.com")
	m.Stanza("out", "fabrikam.com")
	m.Bounced("remote-server-timeout")
	m.Denied("not_partner")
	m.Denied("not_partner")
	m.Denied("blocked")
	m.NegotiationFailed("tls")
	m.QueueDepth(7)
	m.QueueDepth(3)

	want := `
# HELP xmppfed_bounces_total Stanzas bounced to their local sender, by stanza error condition.
# TYPE xmppfed_bounces_total counter
xmppfed_bounces_total{condition="remote-server-timeout"} 1
# HELP xmppfed_negotiation_failures_total Streams that failed to establish, by negotiation step.
# TYPE xmppfed_negotiation_failures_total counter
xmppfed_negotiation_failures_total{step="tls"} 1
# HELP xmppfed_policy_denials_total Refusals by the federation policy, by rule.
# TYPE xmppfed_policy_denials_total counter
xmppfed_policy_denials_total{rule="blocked"} 1
xmppfed_policy_denials_total{rule="not_partner"} 2
# HELP xmppfed_queue_depth Stanzas waiting in the outbound pool.
# TYPE xmppfed_queue_depth gauge
xmppfed_queue_depth 3
# HELP xmppfed_stanzas_total Stanzas received from (in) and sent to (out) partners.
# TYPE xmppfed_stanzas_total counter
xmppfed_stanzas_total{direction="in",partner="fabrikam.com"} 2
xmppfed_stanzas_total{direction="out",partner="fabrikam.com"} 1
# HELP xmppfed_streams_open Established server-to-server streams, by direction and authentication method.
# TYPE xmppfed_streams_open gauge
xmppfed_streams_open{auth="dialback",direction="outbound"} 1
xmppfed_streams_open{auth="sasl-external",direction="inbound"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

// TestPartnerCardinality checks that the partner label takes at most
// MaxPartners values, the rest counting as "other", and that a partner
// seen before the limit keeps its own label afterwards.
func TestPartnerCardinality(t *testing.T) {
	m, reg := newMetrics(t)
	extra := 25
	for i := range promfed.MaxPartners + extra {
		m.Stanza("in", fmt.Sprintf("p%d.example", i))
	}
	m.Stanza("in", "p0.example") // known: keeps its label
	m.Stanza("out", "p0.example")

	n, err := testutil.GatherAndCount(reg, "xmppfed_stanzas_total")
	if err != nil {
		t.Fatal(err)
	}
	// MaxPartners "in" series, one "other", one "out" for p0.
	if want := promfed.MaxPartners + 2; n != want {
		t.Errorf("%d stanzas_total series, want %d", n, want)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var other, p0in float64
	for _, mf := range mfs {
		if mf.GetName() != "xmppfed_stanzas_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch {
			case labels["partner"] == promfed.OtherPartner:
				other = mt.GetCounter().GetValue()
			case labels["partner"] == "p0.example" && labels["direction"] == "in":
				p0in = mt.GetCounter().GetValue()
			}
		}
	}
	if other != float64(extra) {
		t.Errorf("other = %v, want %d", other, extra)
	}
	if p0in != 2 {
		t.Errorf("p0.example in = %v, want 2", p0in)
	}
}

func TestConcurrent(t *testing.T) {
	m, reg := newMetrics(t)
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				m.Stanza("out", fmt.Sprintf("w%d-%d.example", w, i%5))
				m.StreamOpened("outbound", "sasl-external")
				m.StreamClosed("outbound", "sasl-external")
			}
		})
	}
	wg.Wait()
	n, err := testutil.GatherAndCount(reg, "xmppfed_stanzas_total")
	if err != nil {
		t.Fatal(err)
	}
	if n != workers*5 {
		t.Errorf("%d series, want %d", n, workers*5)
	}
	want := `
# HELP xmppfed_streams_open Established server-to-server streams, by direction and authentication method.
# TYPE xmppfed_streams_open gauge
xmppfed_streams_open{auth="sasl-external",direction="outbound"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "xmppfed_streams_open"); err != nil {
		t.Error(err)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := promfed.New(nil, ""); err == nil {
		t.Error("nil Registerer accepted")
	}
	reg := prometheus.NewRegistry()
	if _, err := promfed.New(reg, "bad-namespace"); err == nil {
		t.Error("namespace with '-' accepted")
	}
	if _, err := promfed.New(reg, "a"); err != nil {
		t.Fatal(err)
	}
	_, err := promfed.New(reg, "a")
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		t.Errorf("second New on one registry: %v, want AlreadyRegisteredError", err)
	}
	// The failed New left nothing behind: a third namespace still works and
	// the registry holds only the first set.
	if _, err := promfed.New(reg, "b"); err != nil {
		t.Fatal(err)
	}
}
