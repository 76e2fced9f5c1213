package promfed_test

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/xmppfed/xmppfed/federation"
	"github.com/xmppfed/xmppfed/federation/promfed"
)

// Wire the adapter into a Server; serve reg with promhttp.HandlerFor.
func ExampleNew() {
	reg := prometheus.NewRegistry()
	m, err := promfed.New(reg, "xmppfed")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &federation.Server{Domains: []string{"contoso.example"}, Metrics: m}

	// The Server calls these as streams and stanzas come and go.
	srv.Metrics.StreamOpened("outbound", "sasl-external")
	srv.Metrics.Stanza("out", "fabrikam.example")
	srv.Metrics.Denied("not_partner")

	err = testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP xmppfed_policy_denials_total Refusals by the federation policy, by rule.
# TYPE xmppfed_policy_denials_total counter
xmppfed_policy_denials_total{rule="not_partner"} 1
`), "xmppfed_policy_denials_total")
	fmt.Println("denials as expected:", err == nil)
	fmt.Println("stanza series:", must(testutil.GatherAndCount(reg, "xmppfed_stanzas_total")))
	// Output:
	// denials as expected: true
	// stanza series: 1
}

func must(n int, err error) int {
	if err != nil {
		panic(err)
	}
	return n
}
