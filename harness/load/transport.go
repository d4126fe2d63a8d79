package load

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
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

// newClient is the HTTP client of one run; see "The client" in the package
// documentation for why each setting differs from vegeta's defaults.
func newClient(c *config, d *dialer) (*http.Client, *http.Transport) {
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
	client := &http.Client{
		Transport: tr,
		Timeout:   c.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // the target's own answer
		},
	}
	return client, tr
}
