package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fedbench:", err)
		os.Exit(1)
	}
}

// config holds the flags of one invocation.
type config struct {
	n       int           // scenario size; 0: the scenario's default
	runs    int           // runs per scenario
	per     int           // fanout: messages per domain
	window  int           // throughput: stanzas in flight at most
	workers int           // establish and idle: streams opened concurrently
	level   string        // throughput: "s2s", "federation" or "both"
	timeout time.Duration // bound of one run
	json    bool
	log     io.Writer // progress lines
	// heapProfile: idle writes the in-use heap profile of its idle
	// snapshot (the last run's) to this file.
	heapProfile string
}

// Row is one metric of one scenario over the runs.
type Row struct {
	Scenario string    `json:"scenario"`
	Variant  string    `json:"variant"`
	Metric   string    `json:"metric"`
	Unit     string    `json:"unit"`
	Median   float64   `json:"median"`
	Min      float64   `json:"min"`
	Max      float64   `json:"max"`
	Runs     int       `json:"runs"`
	Values   []float64 `json:"values"`
}

// Report is the -json output.
type Report struct {
	Go      string    `json:"go"`
	CPUs    int       `json:"cpus"`
	Started time.Time `json:"started"`
	Args    []string  `json:"args"`
	Rows    []Row     `json:"rows"`
	Notes   []string  `json:"notes,omitempty"`
}

// sample is one metric measured in one run.
type sample struct {
	variant, metric, unit string
	value                 float64
}

// scenario runs once and returns its samples.
type scenario struct {
	name   string
	defN   int
	runOne func(ctx context.Context, c *config, n int, notes *[]string) ([]sample, error)
}

// scenarios returns the scenarios fedbench runs, in the order of "all".
func scenarios() []scenario {
	return []scenario{
		{"throughput", 200000, runThroughput},
		{"establish", 300, runEstablish},
		{"idle", 10000, runIdle},
		{"fanout", 1000, runFanout},
	}
}

const usage = `usage: fedbench <throughput|establish|idle|fanout|all> [flags]`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	name := args[0]
	var selected []scenario
	if name == "all" {
		selected = scenarios()
	} else {
		for _, s := range scenarios() {
			if s.name == name {
				selected = []scenario{s}
			}
		}
	}
	if selected == nil {
		return fmt.Errorf("unknown scenario %q; %s", name, usage)
	}
	fs := flag.NewFlagSet("fedbench "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{log: stderr}
	fs.IntVar(&c.n, "n", 0, "size: stanzas (throughput, default 200000), streams per variant (establish, 300), idle streams (idle, 10000), remote domains (fanout, 1000)")
	fs.IntVar(&c.runs, "runs", 3, "runs per scenario (the table gives median, min and max)")
	fs.IntVar(&c.per, "per", 5, "fanout: messages per remote domain")
	fs.IntVar(&c.window, "window", 1024, "throughput: stanzas in flight at most")
	fs.IntVar(&c.workers, "workers", 8, "establish (second phase) and idle: streams opened concurrently")
	fs.StringVar(&c.level, "level", "both", "throughput: `level` measured: s2s, federation or both (to profile one alone)")
	fs.DurationVar(&c.timeout, "timeout", 3*time.Minute, "bound of one run")
	fs.BoolVar(&c.json, "json", false, "print JSON instead of a table")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole invocation to `file`")
	memprofile := fs.String("memprofile", "", "write an allocation profile at the end to `file`")
	fs.StringVar(&c.heapProfile, "heapprofile", "", "idle: write the in-use heap profile of the idle snapshot to `file`")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q; %s", fs.Args(), usage)
	}
	if c.runs < 1 || c.n < 0 || c.per < 1 || c.window < 1 || c.workers < 1 || c.timeout <= 0 {
		return errors.New("-runs, -per, -window, -workers and -timeout must be positive, -n not negative")
	}
	if c.level != "s2s" && c.level != "federation" && c.level != "both" {
		return fmt.Errorf("-level %q: want s2s, federation or both", c.level)
	}
	if *quiet {
		c.log = io.Discard
	}
	if c.heapProfile != "" {
		// Every allocation sampled: the idle profile is read per stream.
		runtime.MemProfileRate = 1
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rep := Report{Go: runtime.Version(), CPUs: runtime.NumCPU(), Started: time.Now().UTC(), Args: args}
	for _, s := range selected {
		n := c.n
		if n == 0 {
			n = s.defN
		}
		var per [][]sample
		for r := range c.runs {
			fmt.Fprintf(c.log, "fedbench: %s -n %d, run %d of %d\n", s.name, n, r+1, c.runs)
			rctx, cancel := context.WithTimeout(ctx, c.timeout)
			got, err := s.runOne(rctx, c, n, &rep.Notes)
			cancel()
			if err != nil {
				return fmt.Errorf("%s run %d: %w", s.name, r+1, err)
			}
			per = append(per, got)
		}
		rep.Rows = append(rep.Rows, aggregate(s.name, per)...)
	}
	if *memprofile != "" {
		f, err := os.Create(*memprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	if c.json {
		e := json.NewEncoder(stdout)
		e.SetIndent("", "  ")
		return e.Encode(rep)
	}
	return printTable(stdout, rep)
}

// aggregate turns the runs' samples into rows, in the first run's order.
func aggregate(name string, runs [][]sample) []Row {
	var rows []Row
	idx := map[string]int{}
	for _, run := range runs {
		for _, s := range run {
			k := s.variant + "\x00" + s.metric
			i, ok := idx[k]
			if !ok {
				i = len(rows)
				idx[k] = i
				rows = append(rows, Row{Scenario: name, Variant: s.variant, Metric: s.metric, Unit: s.unit})
			}
			rows[i].Values = append(rows[i].Values, s.value)
		}
	}
	for i := range rows {
		v := slices.Clone(rows[i].Values)
		slices.Sort(v)
		rows[i].Runs = len(v)
		rows[i].Min, rows[i].Max = v[0], v[len(v)-1]
		if len(v)%2 == 1 {
			rows[i].Median = v[len(v)/2]
		} else {
			rows[i].Median = (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
	}
	return rows
}

func printTable(w io.Writer, rep Report) error {
	fmt.Fprintf(w, "fedbench %s  (%s, %d CPUs, %s)\n", strings.Join(rep.Args, " "), rep.Go, rep.CPUs, rep.Started.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tvariant\tmetric\tunit\tmedian\tmin\tmax\truns\t")
	for _, r := range rep.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", r.Scenario, r.Variant, r.Metric, r.Unit,
			num(r.Median), num(r.Min), num(r.Max), r.Runs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	return nil
}

// num formats a metric with three significant digits or more.
func num(v float64) string {
	switch a := max(v, -v); {
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 10:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// percentile returns the p-th percentile (0..100) of d, nearest rank; d is
// sorted in place.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(float64(len(d))*p/100+0.5) - 1
	return d[min(max(i, 0), len(d)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
