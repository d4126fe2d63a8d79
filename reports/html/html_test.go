package html_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/reports/browser"
	"github.com/kube-rehearse/rehearse/reports/compare"
	"github.com/kube-rehearse/rehearse/reports/html"
	"github.com/kube-rehearse/rehearse/reports/record"
	"github.com/kube-rehearse/rehearse/reports/reporttest"
)

func render(t *testing.T, app string, rate int, recovery time.Duration) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, html.Render(&b, reporttest.Restart(app, rate, recovery)))
	return b.String()
}

func TestGolden(t *testing.T) {
	for _, app := range []string{"no-drain", "well-behaved"} {
		t.Run(app, func(t *testing.T) {
			got := render(t, app, 100, 5*time.Second)
			reporttest.Golden(t, app+".html", []byte(got))
		})
	}
}

func TestTheReportHoldsItsParts(t *testing.T) {
	page := render(t, "no-drain", 100, 5*time.Second)
	for _, want := range []string{
		"rehearsal rolling-restart/no-drain: FAILED (3 checks)",
		`data-series="ok refused"`, // requests by outcome, per client
		`id="w0-requests-gateway"`, `id="w0-requests-service"`,
		`id="w0-latency"`, `id="w0-ready"`, `id="w0-events"`, `id="w0-pods"`,
		"pod web-1 deletion requested",       // a marker
		"endpoint web-1 10.244.1.10 removed", // another
		"phase fault begins",
		`class="pod ready"`, `class="fail"`, // pod lanes and failures attributed
		"class 8: endpoint removal lags termination",
		"spec.containers[].lifecycle.preStop.sleep.seconds", // the fix
		`class="zoom" data-window="0"`,                      // evidence links to its moment
	} {
		assert.True(t, strings.Contains(page, want), "the report holds %s", want)
	}
	for _, forbidden := range []string{"http://", "https://"} {
		for _, m := range regexp.MustCompile(`(src|href)="`+forbidden).FindAllString(page, -1) {
			t.Errorf("the report fetches something: %s", m)
		}
	}
}

// A ten-minute run at 200 requests per second per client stays well under
// 2 MB: requests are aggregated, never embedded one by one.
func TestALongRunStaysSmall(t *testing.T) {
	page := render(t, "no-drain", 200, 10*time.Minute)
	assert.Less(t, len(page), 2<<20, "report size")
	assert.True(t, strings.Contains(page, "1 s slices"), "second by second")
	t.Logf("a 10 minute run at 200 rps per client: %d KiB", len(page)>>10)
}

// The report in a real browser: the script zooms every chart from the
// link's hash, and the page is not blank.
func TestTheChartsRenderInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := browser.Ensure(ctx, os.Stderr)
	require.NoError(t, err)
	dir := t.TempDir()
	file := filepath.Join(dir, "report.html")
	require.NoError(t, os.WriteFile(file, []byte(render(t, "no-drain", 100, 5*time.Second)), 0o644))

	dom, err := b.DOM(ctx, "file://"+file+"#w0=10-15")
	require.NoError(t, err)
	plots := regexp.MustCompile(`<svg class="plot"[^>]*viewBox="([^"]*)"`).FindAllStringSubmatch(dom, -1)
	require.NotEmpty(t, plots, "the charts are in the DOM")
	for _, p := range plots {
		assert.True(t, strings.HasPrefix(p[1], "10 0 5 "), "every plot zoomed to 10-15 s by the script: viewBox %q", p[1])
	}
	assert.True(t, strings.Contains(dom, ">12s</text>"), "the time axis was redrawn for the zoomed range")
	assert.True(t, strings.Contains(dom, `data-name="refused"`), "the series are there")
	assert.Regexp(t, `<line class="mark lane-pods"`, dom, "the markers are there")

	shot := filepath.Join(dir, "report.png")
	require.NoError(t, b.Screenshot(ctx, "file://"+file, shot, 1200, 2400))
	f, err := os.Open(shot)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	colours, inked := look(img)
	assert.Greater(t, colours, 20, "a rendered page has many colours, a blank one few")
	assert.Greater(t, inked, 0.05, "share of the page that is not background")
}

// look counts the distinct colours of an image and the share of pixels
// that are not white.
func look(img image.Image) (colours int, inked float64) {
	seen := map[[3]uint32]bool{}
	n, ink := 0, 0
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			seen[[3]uint32{cr >> 10, cg >> 10, cb >> 10}] = true
			n++
			if cr < 0xf000 || cg < 0xf000 || cb < 0xf000 {
				ink++
			}
		}
	}
	return len(seen), float64(ink) / float64(n)
}

func TestTrendPage(t *testing.T) {
	var recs []*record.Record
	for i, app := range []string{"well-behaved", "well-behaved", "no-drain"} {
		r := reporttest.Restart(app, 50, 3*time.Second)
		r.Name, r.Run = "nightly", fmt.Sprintf("night-%d", i+1)
		r.Started = reporttest.Start.Add(time.Duration(i) * 24 * time.Hour)
		recs = append(recs, r)
	}
	h := compare.JudgeHistory(recs, recs[2], compare.HistoryOptions{MinRuns: 2})
	var b bytes.Buffer
	require.NoError(t, html.RenderTrend(&b, "trend of 3 runs", compare.Trend(recs), []compare.History{h}))
	page := b.String()
	assert.True(t, strings.Contains(page, `data-figure="error-rate/gateway error_rate"`), "a chart per judged figure")
	assert.True(t, strings.Contains(page, "night-3 (nightly): REGRESSED"))
	assert.Equal(t, 3, strings.Count(page, "<td>night-"), "a row per run")
	assert.False(t, strings.Contains(page, `data-figure="load achieved_rate`), "the load generator's figures are not charted")
}
