// Package promfed exports the counters and gauges of a federation.Server to
// Prometheus: set Server.Metrics to the *Metrics New returns and serve the
// registry with promhttp.
//
// Prometheus rather than OpenTelemetry: it is a pull endpoint every operator
// already scrapes, with no SDK or exporter pipeline to configure, and the
// federation.Metrics interface keeps OpenTelemetry possible as another
// adapter. Only this package imports the Prometheus client, so a host that
// does not use it does not link it.
//
// The series, each prefixed with the namespace given to New:
//
//	streams_open{direction,auth}          gauge    established streams
//	stanzas_total{direction,partner}      counter  stanzas in and out, per partner
//	bounces_total{condition}              counter  stanzas bounced to their sender
//	policy_denials_total{rule}            counter  policy refusals
//	negotiation_failures_total{step}      counter  streams that failed to establish
//	queue_depth                           gauge    stanzas waiting in the outbound pool
//
// The partner label is bounded: after MaxPartners distinct partners, further
// ones are counted under "other", so a flood of open-federation domains
// cannot grow the series without limit.
package promfed
