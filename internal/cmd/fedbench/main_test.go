package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// The tests run each scenario with tiny counts and check the shape of the
// output only: no timing is asserted.

// wantMetrics are metrics each scenario must report (for some variant).
var wantMetrics = map[string][]string{
	"throughput": {"delivered", "latency p50 (1 in flight)", "latency p99 (1 in flight)", "allocations", "CPU (user+sys)", "ratio to encoding/xml", "decode+encode"},
	"establish":  {"first stanza p50 (1 at a time)", "first stanza p99 (1 at a time)", "new streams (1 at a time)"},
	"idle":       {"heap per stream end", "stacks per stream end", "RSS per stream end", "heap+stacks per connection", "goroutines per connection"},
	"fanout":     {"total time", "delivered", "latency p50", "latency p99", "streams opened", "RSS growth"},
}

func tinyArgs(name string) []string {
	n := "50"
	if name == "idle" {
		n = "20"
	}
	return []string{name, "-n", n, "-runs", "1", "-q", "-workers", "4", "-timeout", "30s"}
}

func TestScenariosJSON(t *testing.T) {
	for name, metrics := range wantMetrics {
		t.Run(name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			var out, errOut bytes.Buffer
			if err := run(context.Background(), append(tinyArgs(name), "-json"), &out, &errOut); err != nil {
				t.Fatalf("run: %v (stderr %q)", err, errOut.String())
			}
			var rep Report
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out.String())
			}
			if rep.CPUs < 1 || rep.Go == "" || len(rep.Rows) == 0 {
				t.Fatalf("report = %+v", rep)
			}
			seen := map[string]bool{}
			for _, r := range rep.Rows {
				if r.Scenario != name || r.Variant == "" || r.Unit == "" || r.Runs != 1 || len(r.Values) != 1 ||
					r.Min > r.Median || r.Median > r.Max {
					t.Errorf("bad row %+v", r)
				}
				seen[r.Metric] = true
			}
			for _, m := range metrics {
				if !seen[m] {
					t.Errorf("no %q metric in %+v", m, rep.Rows)
				}
			}
		})
	}
}

func TestTable(t *testing.T) {
	defer goleak.VerifyNone(t)
	var out, errOut bytes.Buffer
	args := append(tinyArgs("establish"), "-runs", "3")
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("run: %v (stderr %q)", err, errOut.String())
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "fedbench establish") {
		t.Fatalf("table:\n%s", out.String())
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "scenario variant metric unit median min max runs" {
		t.Errorf("header = %q", lines[1])
	}
	rows := 0
	for _, l := range lines[2:] {
		if strings.HasPrefix(l, "note:") {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 8 || f[0] != "establish" || f[len(f)-1] != "3" {
			t.Errorf("row %q", l)
		}
		rows++
	}
	if want := len(estVariants()) * 5; rows != want {
		t.Errorf("%d rows, want %d:\n%s", rows, want, out.String())
	}
}

func TestBadArguments(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"idle", "-runs", "0"}, {"fanout", "extra"}} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}

func TestAggregate(t *testing.T) {
	rows := aggregate("x", [][]sample{
		{{"v", "m", "u", 3}},
		{{"v", "m", "u", 1}},
		{{"v", "m", "u", 2}},
	})
	if len(rows) != 1 || rows[0].Median != 2 || rows[0].Min != 1 || rows[0].Max != 3 || rows[0].Runs != 3 {
		t.Errorf("aggregate = %+v", rows)
	}
}
