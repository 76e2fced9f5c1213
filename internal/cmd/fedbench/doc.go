// Command fedbench measures xmppfed library to library on loopback (issue
// 8): two federation.Servers, or s2s.Servers where a scenario is about
// streams, in one process, with certificates from a certs.TestCA and DNS
// from a dnsdiscotest server. Usage:
//
//	go run ./internal/cmd/fedbench <scenario> [flags]
//
// Scenarios:
//
//   - throughput: one established TLS stream, at the s2s level (Send to
//     Handler) and at the federation level (Send of a translate.Message
//     to Backend.DeliverMessage): stanzas/s, p50/p99 latency, allocations
//     and CPU per stanza, and the ratio to a plain encoding/xml
//     decode+encode loop of the same stanza measured in the same run.
//   - establish: fresh authenticated streams to new domains, for SASL
//     EXTERNAL and dialback, over STARTTLS and direct TLS: time to the
//     first delivered stanza (one stream at a time) and streams per second
//     (a few at a time).
//   - idle: memory per idle authenticated stream with -n streams open.
//   - fanout: -n remote domains hosted by one peer, each receiving -per
//     messages interleaved, from a federation.Server.
//   - all: throughput, establish, idle and fanout.
//
// Each scenario runs -runs times (default 3) and prints one table with the
// median, min and max of every metric over the runs, or JSON with -json.
// Every run is bounded in count (-n) and time (-timeout). -cpuprofile and
// -memprofile write profiles of the whole invocation; throughput's parts
// run under the pprof label level=s2s, level=federation or
// level=encoding/xml (go tool pprof -tagfocus). idle needs two descriptors
// per connection: it raises RLIMIT_NOFILE when it may, and otherwise
// measures as many connections as the hard limit allows, with a note.
// BENCHMARKS.md has the method and the figures.
package main
