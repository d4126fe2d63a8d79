package load

import (
	"context"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/fixtures/app"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// fakeRouter round-robins over a list the test changes.
type fakeRouter struct {
	mu   sync.Mutex
	eps  []Endpoint
	all  map[string]Endpoint
	next atomic.Uint64
}

func (r *fakeRouter) set(eps ...Endpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.eps = eps
	if r.all == nil {
		r.all = map[string]Endpoint{}
	}
	for _, e := range eps {
		r.all[e.Addr] = e
	}
}

func (r *fakeRouter) Pick() (Endpoint, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.eps) == 0 {
		return Endpoint{}, false
	}
	return r.eps[r.next.Add(1)%uint64(len(r.eps))], true
}

func (r *fakeRouter) Lookup(addr string) (Endpoint, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.all[addr]
	return e, ok
}

func hostPort(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u.Host
}

// A routing client attributes every request to the pod it chose, from the
// route, not from headers: here the apps set none.
func TestRoutedClientAttributesByRoute(t *testing.T) {
	noHeaders := func(c *app.Config) { c.AttributionHeaders = false }
	a, b := startApp(t, noHeaders), startApp(t, noHeaders)
	r := &fakeRouter{}
	epA := Endpoint{Addr: hostPort(t, a.base), Pod: "web-a", UID: "ua", Node: "n1"}
	epB := Endpoint{Addr: hostPort(t, b.base), Pod: "web-b", UID: "ub", Node: "n2"}
	r.set(epA, epB)

	g, err := New("http://app/", ViaRouter(r), Rate(100), Duration(1500*time.Millisecond))
	require.NoError(t, err)
	assert.Equal(t, timeline.ClientGateway, g.Kind())
	assert.Contains(t, g.String(), "gateway client")
	tl := timeline.New(time.Now())
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(700 * time.Millisecond)
		_ = b.srv.Close() // pod b goes away while still routed: refused, attributed to b
	}()
	sum, err := g.Run(context.Background(), tl)
	require.NoError(t, err)
	<-done

	perPod := map[string][2]int{}
	reused := 0
	for _, rq := range tl.Requests() {
		assert.Equal(t, timeline.ClientGateway, rq.Client)
		assert.Equal(t, timeline.ViaRoute, rq.Via, "%+v", rq)
		c := perPod[rq.Pod]
		if rq.OK() {
			c[0]++
		} else {
			c[1]++
			assert.Equal(t, "web-b", rq.Pod, "only b failed: %+v", rq)
			assert.Contains(t, []timeline.ErrorKind{timeline.ErrRefused, timeline.ErrEOF, timeline.ErrReset, timeline.ErrClosedIdle}, rq.Err, "%+v", rq)
		}
		perPod[rq.Pod] = c
		if rq.Reused {
			reused++
		}
	}
	t.Logf("%s; per pod [ok failed]: %v; reused %d", sum, perPod, reused)
	assert.Positive(t, perPod["web-a"][0])
	assert.Zero(t, perPod["web-a"][1])
	assert.Positive(t, perPod["web-b"][0])
	assert.Positive(t, perPod["web-b"][1], "requests routed to the closed pod fail, and are attributed to it")
	assert.Positive(t, reused, "connections are pooled per pod")
}

// With nothing to route to, the gateway client answers 503 itself.
func TestRoutedClientWithoutEndpoints(t *testing.T) {
	r := &fakeRouter{}
	g, err := New("http://app/", ViaRouter(r), Rate(50), Duration(time.Second))
	require.NoError(t, err)
	tl := timeline.New(time.Now())
	sum, err := g.Run(context.Background(), tl)
	require.NoError(t, err)
	assert.Equal(t, sum.Sent, sum.Failed)
	for _, rq := range tl.Requests() {
		assert.Equal(t, 503, rq.Code)
		assert.Equal(t, NoEndpointStatus, rq.ErrText)
		assert.Equal(t, timeline.ViaNone, rq.Via)
	}
}

// net/http must not re-send a request that failed on a reused connection:
// the server drops every 5th request on a pooled connection, and the client
// sees each loss, marked as sent on a reused connection.
func TestNoTransparentRetry(t *testing.T) {
	d, u := startDropper(t, 5)
	g, err := New(u, KeepAlive(true), Rate(100), Duration(time.Second))
	require.NoError(t, err)
	tl := timeline.New(time.Now())
	sum, err := g.Run(context.Background(), tl)
	require.NoError(t, err)
	received, dropped := d.stats()
	assert.Equal(t, sum.Sent, received, "no request was sent twice")
	assert.Equal(t, dropped, sum.Failed)
	lostReused := 0
	for _, rq := range tl.Requests() {
		if !rq.OK() && rq.Reused {
			lostReused++
		}
	}
	assert.Positive(t, lostReused, "losses on pooled connections are recorded as such")
}
