//go:build unix

package load

// Acceptance figures of the load generator, reported rather than asserted
// (timing on a shared machine is not a pass/fail matter):
//
//	go test -run '^$' -bench . -benchtime 1x ./harness/load/
//
// Each benchmark runs its experiment once, for a few seconds, whatever b.N
// is, and reports through b.ReportMetric and a readable log line.

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/harness/verdict"
)

// report logs a readable line and hides the meaningless ns/op.
func report(b *testing.B, format string, a ...any) {
	b.Helper()
	b.ReportMetric(0, "ns/op")
	b.Logf(format, a...)
}

// BenchmarkOutagePrecision: how exactly does the timeline measure an outage
// of known length? At 500 rps (a request every 2 ms) the app fails every
// request arriving inside a 1 s admin failure window; the longest run of
// failures on the timeline (verdict.FailureRuns: first failed send to the next
// successful send) should be 1 s within one request interval.
func BenchmarkOutagePrecision(b *testing.B) {
	const (
		rate     = 500
		interval = time.Second / rate
		outage   = time.Second
	)
	a := startApp(b, nil)
	tl := timeline.New(time.Now())
	g, err := New(a.url, Rate(rate), Duration(3*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	from := time.Now().Add(time.Second)
	until := from.Add(outage)
	a.failBetween(b, from, until)

	b.ResetTimer()
	sum, err := g.Run(context.Background(), tl)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()

	s := tl.Snapshot()
	outages := verdict.FailureRuns(&s, timeline.ClientService)
	if len(outages) == 0 {
		b.Fatalf("no outage on the timeline: %s", sum)
	}
	o := slices.MaxFunc(outages, func(x, y verdict.FailureRun) int { return int(x.Duration() - y.Duration()) })
	errDur := o.Duration() - outage
	startEdge := o.From - tl.Since(from) // send time of the first failure vs the window's start
	endEdge := o.To - tl.Since(until)    // send time of the first success vs the window's end

	b.ReportMetric(float64(o.Duration())/1e6, "measured-ms")
	b.ReportMetric(float64(errDur)/1e6, "error-ms")
	b.ReportMetric(float64(errDur)/float64(interval), "error-intervals")
	b.ReportMetric(float64(startEdge)/1e6, "start-edge-ms")
	b.ReportMetric(float64(endEdge)/1e6, "end-edge-ms")
	report(b, "outage precision at %d rps (interval %v): true %v, measured %v (%d failed requests, %d outage runs), "+
		"error %+.3f ms = %+.2f intervals (goal: within ±1); edges vs the window: start %+.3f ms, end %+.3f ms; load: %s",
		rate, interval, outage, o.Duration(), o.Failed, len(outages),
		float64(errDur)/1e6, float64(errDur)/float64(interval), float64(startEdge)/1e6, float64(endEdge)/1e6, sum)
}

// BenchmarkAchievedRate: does the generator hold 1000 rps?
func BenchmarkAchievedRate(b *testing.B) {
	const rate = 1000
	a := startApp(b, nil)
	tl := timeline.New(time.Now())
	g, err := New(a.url, Rate(rate), Duration(3*time.Second))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	sum, err := g.Run(context.Background(), tl)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()

	// The same figure from the timeline itself: sends in the middle second.
	s := tl.Snapshot()
	mid := len(s.RequestsIn(sum.First+time.Second, sum.First+2*time.Second))

	b.ReportMetric(sum.Achieved, "achieved-rps")
	b.ReportMetric(sum.Achieved/rate, "achieved/target")
	b.ReportMetric(float64(mid), "sends-in-mid-second")
	report(b, "rate: target %d rps, achieved %.2f rps (ratio %.4f), %d sends in the middle second; load: %s",
		rate, sum.Achieved, sum.Achieved/rate, mid, sum)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func mallocs() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Mallocs
}

// cost is what one run spent.
type cost struct {
	requests int
	cpu      time.Duration
	mallocs  uint64
}

func (c *cost) add(requests int, cpu time.Duration, m uint64) {
	c.requests += requests
	c.cpu += cpu
	c.mallocs += m
}

func (c cost) cpuPerRequest() time.Duration { return c.cpu / time.Duration(max(c.requests, 1)) }
func (c cost) mallocsPerRequest() float64   { return float64(c.mallocs) / float64(max(c.requests, 1)) }

// measure runs f and returns the process CPU time and allocations it took.
func measure(f func() int) (int, time.Duration, uint64) {
	runtime.GC()
	m0, c0 := mallocs(), cpuTime()
	n := f()
	c1, m1 := cpuTime(), mallocs()
	return n, c1 - c0, m1 - m0
}

// BenchmarkCPUPerRequest: what does streaming into a timeline cost over plain
// vegeta? The same load (2000 rps) runs through a plain vegeta Attacker
// (default options but MaxBody(0), as ours), its results discarded, and through a Generator into a timeline, twice each in
// the order vegeta, ours, ours, vegeta to even out drift. CPU is the whole
// process's (getrusage RUSAGE_SELF, user + system): the in-process app
// serving the requests is included in both figures, so the difference is the
// harness's overhead and the ratio understates it relative to the client
// alone.
func BenchmarkCPUPerRequest(b *testing.B) {
	const (
		rate = 2000
		dur  = 1500 * time.Millisecond
	)
	a := startApp(b, nil)

	plain := func() int {
		// vegeta's defaults, but like ours it drains bodies without keeping
		// them, so that the difference is the streaming into the timeline.
		atk := vegeta.NewAttacker(vegeta.MaxBody(0))
		n := 0
		for range atk.Attack(vegeta.NewStaticTargeter(vegeta.Target{Method: "GET", URL: a.url}),
			vegeta.ConstantPacer{Freq: rate, Per: time.Second}, dur, "plain") {
			n++
		}
		return n
	}
	ours := func() int {
		g, err := New(a.url, Rate(rate), Duration(max(dur, MinDuration)))
		if err != nil {
			b.Fatal(err)
		}
		sum, err := g.Run(context.Background(), timeline.New(time.Now()))
		if err != nil {
			b.Fatal(err)
		}
		if sum.Failed > 0 {
			b.Logf("warning: %s", sum)
		}
		return sum.Sent
	}

	var pv, po cost
	b.ResetTimer()
	for _, f := range []struct {
		name string
		run  func() int
		c    *cost
	}{{"vegeta", plain, &pv}, {"ours", ours, &po}, {"ours", ours, &po}, {"vegeta", plain, &pv}} {
		n, cpu, m := measure(f.run)
		b.Logf("  %-6s %d requests (target %d), %.1f µs CPU/req, %.1f allocs/req", f.name, n,
			int(rate*dur/time.Second), float64(cpu.Nanoseconds())/1e3/float64(max(n, 1)), float64(m)/float64(max(n, 1)))
		f.c.add(n, cpu, m)
	}
	b.StopTimer()

	ratio := float64(po.cpuPerRequest()) / float64(pv.cpuPerRequest())
	b.ReportMetric(float64(pv.cpuPerRequest().Nanoseconds())/1e3, "vegeta-µs-cpu/req")
	b.ReportMetric(float64(po.cpuPerRequest().Nanoseconds())/1e3, "ours-µs-cpu/req")
	b.ReportMetric(ratio, "cpu-ratio")
	b.ReportMetric(pv.mallocsPerRequest(), "vegeta-allocs/req")
	b.ReportMetric(po.mallocsPerRequest(), "ours-allocs/req")
	report(b, "CPU per request at %d rps (process CPU, the in-process app's share included in both): "+
		"plain vegeta %.1f µs (%d requests, %.1f allocs/req), generator into a timeline %.1f µs (%d requests, %.1f allocs/req); "+
		"overhead ratio %.3f (%s per request)",
		rate, float64(pv.cpuPerRequest())/1e3, pv.requests, pv.mallocsPerRequest(),
		float64(po.cpuPerRequest())/1e3, po.requests, po.mallocsPerRequest(), ratio,
		fmt.Sprintf("%+.1f µs", float64(po.cpuPerRequest()-pv.cpuPerRequest())/1e3))
}
