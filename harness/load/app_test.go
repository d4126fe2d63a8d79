package load

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/fixtures/app"
)

// The identity the in-process app answers with.
const (
	testPod  = "rehearsal-app-7f9c"
	testNode = "kind-worker2"
	testIP   = "10.244.1.7"
)

// testApp is the rehearsal app served in-process on a loopback port.
type testApp struct {
	srv    *app.Server
	url    string // the main path
	base   string // scheme://host:port
	served chan error
}

// startApp serves the rehearsal app on 127.0.0.1 until the test ends.
func startApp(tb testing.TB, mutate func(*app.Config)) *testApp {
	tb.Helper()
	cfg := app.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.CgroupRoot = tb.TempDir()
	cfg.SizeGOMAXPROCS = false
	cfg.PodName, cfg.NodeName, cfg.PodIP = testPod, testNode, testIP
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := app.NewServer(cfg, app.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(tb, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	a := &testApp{srv: srv, base: "http://" + ln.Addr().String(), served: make(chan error, 1)}
	a.url = a.base + "/"
	go func() { a.served <- srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return a
}

// failBetween sets the app's failure window through its admin API, as a
// rehearsal does against a pod.
func (a *testApp) failBetween(tb testing.TB, from, until time.Time) {
	tb.Helper()
	q := url.Values{
		"from":  {from.UTC().Format(time.RFC3339Nano)},
		"until": {until.UTC().Format(time.RFC3339Nano)},
	}
	resp, err := http.Post(a.base+"/admin/fail?"+q.Encode(), "", nil)
	require.NoError(tb, err)
	defer resp.Body.Close()
	require.Equal(tb, http.StatusOK, resp.StatusCode, "admin failure window refused")
}

// dropEvery is a server that answers normally, except that every nth request
// it receives is read and then dropped: the connection is closed with no
// answer, as a process killed mid-request would do.
type dropEvery struct {
	n              int
	mu             sync.Mutex
	count, dropped int
}

func (d *dropEvery) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.count++
	drop := d.count%d.n == 0
	if drop {
		d.dropped++
	}
	d.mu.Unlock()
	if !drop {
		fmt.Fprintln(w, "ok")
		return
	}
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(errors.New("hijack: " + err.Error()))
	}
	_ = conn.Close()
}

func (d *dropEvery) stats() (count, dropped int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.count, d.dropped
}

func startDropper(tb testing.TB, n int) (*dropEvery, string) {
	tb.Helper()
	d := &dropEvery{n: n}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	srv := &http.Server{Handler: d}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return d, "http://" + ln.Addr().String() + "/"
}
