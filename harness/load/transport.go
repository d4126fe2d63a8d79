package load

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// errAborted is what requests see once the run was aborted.
var errAborted = errors.New("load: run aborted")

// dialer makes the connections of one run and can close them all at once.
//
// vegeta builds requests without a context (Target.Request), so an in-flight
// request cannot be cancelled through it; closing its connection is the one
// way to end it at once. Tracking costs one small allocation and a map
// operation per connection, nothing per request on a kept-alive connection.
type dialer struct {
	net     net.Dialer
	mu      sync.Mutex
	open    map[*trackedConn]struct{}
	aborted bool
}

func newDialer(timeout time.Duration) *dialer {
	return &dialer{
		net:  net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second},
		open: map[*trackedConn]struct{}{},
	}
}

func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	aborted := d.aborted
	d.mu.Unlock()
	if aborted {
		return nil, errAborted
	}
	c, err := d.net.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, d: d}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.aborted {
		_ = c.Close()
		return nil, errAborted
	}
	d.open[tc] = struct{}{}
	return tc, nil
}

// abort closes every open connection and refuses new ones.
func (d *dialer) abort() {
	d.mu.Lock()
	d.aborted = true
	conns := make([]*trackedConn, 0, len(d.open))
	for c := range d.open {
		conns = append(conns, c)
	}
	clear(d.open)
	d.mu.Unlock()
	for _, c := range conns {
		_ = c.Conn.Close()
	}
}

func (d *dialer) forget(c *trackedConn) {
	d.mu.Lock()
	delete(d.open, c)
	d.mu.Unlock()
}

type trackedConn struct {
	net.Conn
	d *dialer
}

func (c *trackedConn) Close() error {
	c.d.forget(c)
	return c.Conn.Close()
}

// newClient is the HTTP client of one run; see "The clients" in the package
// documentation for why each setting differs from vegeta's defaults.
func newClient(c *config, d *dialer, side *sideTable) *http.Client {
	workers := c.maxWorkers()
	tr := &http.Transport{
		Proxy:               nil, // never a proxy from the environment
		DialContext:         d.DialContext,
		DisableKeepAlives:   !c.keepAlive,
		MaxIdleConnsPerHost: workers, // every worker can park its connection
		MaxConnsPerHost:     c.conns, // 0: no cap
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: c.timeout,
		// HTTP/1.1 only: a non-nil empty map disables the HTTP/2 upgrade.
		TLSNextProto:      map[string]func(string, *tls.Conn) http.RoundTripper{},
		ForceAttemptHTTP2: false,
	}
	return &http.Client{
		Transport: &observedTransport{base: tr, side: side, router: c.router, retry: c.transparentRetry},
		Timeout:   c.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // the target's own answer
		},
	}
}

// observedTransport wraps the run's http.Transport to learn, per request,
// what a timeline needs and net/http does not return: whether the request
// went out on a reused connection, whether it was fully written before it
// failed, and (for a routing client) which pod it was sent to. It also keeps
// net/http from retrying behind the harness's back (see noRetryBody).
type observedTransport struct {
	base   *http.Transport
	side   *sideTable
	router Router
	retry  bool // let net/http retry replayable requests (models a plain Go client)
}

func (t *observedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	seq, ok := parseSeq(req.Header.Get(seqHeader))
	// vegeta's bookkeeping headers are not part of what a client sends.
	req.Header.Del(seqHeader)
	req.Header.Del(attackHeader)
	if req.URL.Host == noEndpointHost {
		return noEndpointResponse(req), nil
	}
	var info reqInfo
	if t.router != nil {
		if ep, found := t.router.Lookup(req.URL.Host); found {
			info.ep, info.routed = ep, true
		}
	}
	// The callbacks may run on net/http's own goroutines, even after
	// RoundTrip returned (a write that ends after a timeout): atomics.
	var reused, wrote atomic.Bool
	trace := &httptrace.ClientTrace{
		GotConn:      func(ci httptrace.GotConnInfo) { reused.Store(ci.Reused) },
		WroteRequest: func(w httptrace.WroteRequestInfo) { wrote.Store(w.Err == nil) },
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	if !t.retry && req.Body == nil {
		req.Body, req.GetBody, req.ContentLength = noRetryBody{}, nil, 0
	}
	resp, err := t.base.RoundTrip(req)
	if ok {
		info.reused, info.wrote = reused.Load(), wrote.Load()
		t.side.put(seq, info)
	}
	return resp, err
}

// noRetryBody is the body of every request the harness sends. net/http's
// Transport documents that it retries a request that failed on a reused
// connection when the request is idempotent (GET, HEAD...) and "either has
// no body or has its Request.GetBody defined". A real gateway or a load
// balancer reports such a failure, and so must the harness: a retried
// request hides exactly the loss a rehearsal is looking for (an in-flight
// request killed with its pod). An empty body without GetBody makes the
// request non-replayable; net/http probes it, finds it empty and sends no
// body and no Content-Length, so the wire request is unchanged.
// TestNoTransparentRetry holds net/http to this.
type noRetryBody struct{}

func (noRetryBody) Read([]byte) (int, error) { return 0, io.EOF }
func (noRetryBody) Close() error             { return nil }

func noEndpointResponse(req *http.Request) *http.Response {
	return &http.Response{
		Status: NoEndpointStatus, StatusCode: http.StatusServiceUnavailable,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: http.NoBody, Request: req,
	}
}

// vegeta numbers every request in this header (and names the attack in the
// other); the number links a result to what the transport saw of it.
const (
	seqHeader    = "X-Vegeta-Seq"
	attackHeader = "X-Vegeta-Attack"
)

func parseSeq(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// reqInfo is what the transport learnt of one request.
type reqInfo struct {
	reused, wrote bool
	routed        bool
	ep            Endpoint
}

// sideTable hands reqInfo from the transport to the recorder, by vegeta's
// sequence number. In steady state it holds about as many entries as there
// are requests in flight, and a map reuses its space, so it allocates
// nothing per request once warm.
type sideTable struct {
	mu sync.Mutex
	m  map[uint64]reqInfo
}

func newSideTable() *sideTable { return &sideTable{m: map[uint64]reqInfo{}} }

func (s *sideTable) put(seq uint64, info reqInfo) {
	s.mu.Lock()
	s.m[seq] = info
	s.mu.Unlock()
}

func (s *sideTable) take(seq uint64) (reqInfo, bool) {
	s.mu.Lock()
	info, ok := s.m[seq]
	if ok {
		delete(s.m, seq)
	}
	s.mu.Unlock()
	return info, ok
}

// hostOf is the host:port of an http URL, without allocating.
func hostOf(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	}
	if i := strings.IndexByte(u, '/'); i >= 0 {
		u = u[:i]
	}
	return u
}
