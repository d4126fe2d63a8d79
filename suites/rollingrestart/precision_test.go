package rollingrestart

// The harness's own precision, on a real cluster (a benchmark, not a timed
// test: figures on a shared machine are reported, not asserted):
//
//	go test -run '^$' -bench FailureWindow -benchtime 1x ./suites/rollingrestart
//
// Every pod of the rehearsal app fails every request that arrives inside an
// admin failure window of exactly 1 s (the same window on every pod, set
// through the app's admin API); both client kinds load the app at 500
// requests per second each (1000 in total). Each client's longest run of
// failed requests should measure the window within one request interval
// (2 ms).

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/harness"
	"github.com/kube-rehearse/rehearse/harness/scenario"
	"github.com/kube-rehearse/rehearse/harness/verdict"
	"github.com/kube-rehearse/rehearse/suites/suite"
)

func BenchmarkFailureWindow(b *testing.B) {
	const (
		perClient = 500
		window    = time.Second
		interval  = time.Second / perClient
	)
	ctx := context.Background()
	spec, err := appspec.PresetSpec(appspec.PresetWellBehaved, appspec.Image)
	if err != nil {
		b.Fatal(err)
	}
	app := harness.RehearsalApp(spec)
	app.Namespace = "rr-precision"
	var from, until time.Time
	failWindow := scenario.Scenario{Kind: "failure-window", Steps: []scenario.Step{
		scenario.Do("fail every pod for exactly 1 s", func(ctx context.Context, sc *scenario.Context) error {
			pods, err := sc.Client.CoreV1().Pods(sc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: spec.PodSelector()})
			if err != nil {
				return err
			}
			from = time.Now().Add(time.Second)
			until = from.Add(window)
			q := url.Values{"from": {from.UTC().Format(time.RFC3339Nano)}, "until": {until.UTC().Format(time.RFC3339Nano)}}
			for _, p := range pods.Items {
				resp, err := http.Post(fmt.Sprintf("http://%s:%d/admin/fail?%s", p.Status.PodIP, spec.Port, q.Encode()), "", nil)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("pod %s refused the failure window: %s", p.Name, resp.Status)
				}
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(window + 2*time.Second):
				return nil
			}
		}),
	}}
	r, err := harness.New(harness.WithTarget(suite.Env.Target), harness.WithApp(app), harness.WithRate(perClient),
		harness.WithChecks(verdict.CheckLoad, verdict.CheckBaseline))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	res, err := r.Rehearse(ctx, harness.Fixed(failWindow))
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = suite.Env.Target.Client().CoreV1().Namespaces().Delete(context.Background(), app.Namespace, metav1.DeleteOptions{})
	}()
	b.ReportMetric(0, "ns/op")
	s := res.Timeline.Snapshot()
	for _, k := range suite.Clients {
		runs := verdict.FailureRuns(&s, k)
		if len(runs) == 0 {
			b.Errorf("%s client: no failure on the timeline: %s", k, res.Loads[k])
			continue
		}
		o := slices.MaxFunc(runs, func(x, y verdict.FailureRun) int { return int(x.Duration() - y.Duration()) })
		errDur := o.Duration() - window
		b.ReportMetric(float64(o.Duration())/1e6, k.String()+"-measured-ms")
		b.ReportMetric(float64(errDur)/float64(interval), k.String()+"-error-intervals")
		b.Logf("%s client at %d rps (interval %v): window %v measured %v (%d failed in a row), error %+.3f ms = %+.2f intervals; "+
			"first failed send %+.3f ms from the window's start; load: %s; verdict of the load check: %s",
			k, perClient, interval, window, o.Duration(), o.Failed, float64(errDur)/1e6, float64(errDur)/float64(interval),
			float64(o.From-res.Timeline.Since(from))/1e6, res.Loads[k], checkSummary(res, verdict.CheckLoad))
	}
}

func checkSummary(res *harness.Result, name string) string {
	c, _ := res.Report.Check(name)
	return string(c.Status) + ": " + c.Summary
}
