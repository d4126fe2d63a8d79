package load

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Bounds and defaults of the settings.
const (
	MinRate         = 1    // requests per second
	MaxRate         = 5000 // requests per second
	DefaultRate     = 100
	MinDuration     = time.Second
	MaxDuration     = 2 * time.Hour
	DefaultDuration = 5 * time.Minute

	DefaultTimeout = 2 * time.Second
	MinTimeout     = time.Millisecond
	MaxTimeout     = time.Minute

	// MaxWorkersLimit bounds the workers (requests in flight): each holds a
	// goroutine and, with keep-alive off, a socket.
	MaxWorkersLimit = 20000
	// MaxConnectionsLimit bounds MaxConnections.
	MaxConnectionsLimit = 20000

	DefaultName = "load"
)

// Option configures a Generator, in the style of vegeta's attacker options.
type Option func(*config)

type config struct {
	name      string
	target    string
	method    string
	header    http.Header
	body      []byte
	rate      int
	duration  time.Duration
	timeout   time.Duration
	keepAlive bool
	workers   int // when workersSet; otherwise derived from rate and timeout
	conns     int // when connsSet; otherwise no cap beyond the workers

	kind             timeline.ClientKind
	router           Router
	transparentRetry bool

	workersSet, connsSet, keepAliveSet, kindSet bool
}

func defaultConfig(target string) config {
	return config{
		name:     DefaultName,
		target:   target,
		method:   http.MethodGet,
		header:   http.Header{},
		rate:     DefaultRate,
		duration: DefaultDuration,
		timeout:  DefaultTimeout,
	}
}

// settle fills the defaults that depend on other settings: the client kind
// follows from whether a router is set, and keep-alive from the kind.
func (c *config) settle() {
	if !c.kindSet {
		c.kind = timeline.ClientService
		if c.router != nil {
			c.kind = timeline.ClientGateway
		}
	}
	if !c.keepAliveSet {
		c.keepAlive = c.kind == timeline.ClientGateway
	}
}

// Rate sets the constant request rate, in requests per second (1 to 5000;
// default 100).
func Rate(perSecond int) Option { return func(c *config) { c.rate = perSecond } }

// Duration sets how long the load runs (1 s to 2 h; default 5 min). It can
// be ended earlier with Stop or by cancelling the context.
func Duration(d time.Duration) Option { return func(c *config) { c.duration = d } }

// Timeout sets the per-request timeout: connecting, sending and reading the
// whole answer (1 ms to 1 min; default 2 s).
func Timeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// Method sets the HTTP method (default GET).
func Method(m string) Option { return func(c *config) { c.method = m } }

// Header adds a request header. A "Host" header sets the request's Host.
func Header(key, value string) Option { return func(c *config) { c.header.Add(key, value) } }

// Body sets the request body (default none).
func Body(b []byte) Option {
	return func(c *config) { c.body = append([]byte(nil), b...) }
}

// KeepAlive turns connection reuse on or off. By default a routing
// (gateway) client keeps connections alive, pooled per pod, and a service
// client opens a new connection per request; see the package documentation.
func KeepAlive(on bool) Option { return func(c *config) { c.keepAlive, c.keepAliveSet = on, true } }

// Client sets the client kind recorded on every request. By default a client
// with a router is a gateway client, one without a service client.
func Client(kind timeline.ClientKind) Option {
	return func(c *config) { c.kind, c.kindSet = kind, true }
}

// ViaRouter makes the client route each request itself, like an ingress
// controller: the router picks the pod, the request goes to its address
// (the target URL's host is replaced; its path and query are kept) and the
// result is attributed to that pod whatever happened to the request.
func ViaRouter(r Router) Option { return func(c *config) { c.router = r } }

// TransparentRetry lets net/http re-send a request that failed on a reused
// keep-alive connection, as a plain Go client does (off by default: the
// harness must see every loss). Only for demonstrating what such clients
// miss; see the package documentation.
func TransparentRetry(on bool) Option { return func(c *config) { c.transparentRetry = on } }

// MaxWorkers caps the requests in flight (1 to MaxWorkersLimit). The default,
// rate × timeout (at least 10), sustains the rate even when every request
// times out.
func MaxWorkers(n int) Option { return func(c *config) { c.workers, c.workersSet = n, true } }

// MaxConnections caps the open connections to the target (1 to
// MaxConnectionsLimit; default: no cap beyond the workers). Requests waiting
// for a connection count their wait in their latency and timeout.
func MaxConnections(n int) Option { return func(c *config) { c.conns, c.connsSet = n, true } }

// Name names the load in the timeline notes and the summary (default "load").
func Name(name string) Option { return func(c *config) { c.name = name } }

// maxWorkers is the effective worker ceiling.
func (c *config) maxWorkers() int {
	if c.workersSet {
		return c.workers
	}
	n := int((int64(c.rate)*int64(c.timeout) + int64(time.Second) - 1) / int64(time.Second))
	return min(max(n, 10), MaxWorkersLimit)
}

// validate reports every invalid setting at once, each with the option that
// fixes it.
func (c *config) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	u, err := url.Parse(c.target)
	switch {
	case c.target == "":
		bad("target is empty: give the URL to load, e.g. load.New(\"http://127.0.0.1:8080/\")")
	case err != nil:
		bad("target %q does not parse (%v): give a URL such as http://host:port/path", c.target, err)
	case u.Scheme != "http" && u.Scheme != "https":
		bad("target %q is not an http:// or https:// URL: give a URL such as http://host:port/path", c.target)
	case u.Hostname() == "":
		bad("target %q has no host: give a URL such as http://host:port/path", c.target)
	}
	if c.rate < MinRate || c.rate > MaxRate {
		bad("rate %d requests/s is out of range: use load.Rate(n) with n from %d to %d", c.rate, MinRate, MaxRate)
	}
	if c.duration < MinDuration || c.duration > MaxDuration {
		bad("duration %v is out of range: use load.Duration(d) with d from %v to %v (stop earlier with Stop or the context)",
			c.duration, MinDuration, MaxDuration)
	}
	if c.timeout < MinTimeout || c.timeout > MaxTimeout {
		bad("timeout %v is out of range: use load.Timeout(d) with d from %v to %v, e.g. load.Timeout(2*time.Second)",
			c.timeout, MinTimeout, MaxTimeout)
	}
	if c.method == "" || strings.ContainsFunc(c.method, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r) }) {
		bad("method %q is not an HTTP method: use load.Method(\"GET\") or another token", c.method)
	}
	for k := range c.header {
		if k == "" || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == ':' }) {
			bad("header name %q is invalid: use load.Header(\"X-Name\", value)", k)
		}
	}
	if c.workersSet && (c.workers < 1 || c.workers > MaxWorkersLimit) {
		bad("max workers %d is out of range: use load.MaxWorkers(n) with n from 1 to %d, or leave the default (rate × timeout)",
			c.workers, MaxWorkersLimit)
	}
	if c.connsSet && (c.conns < 1 || c.conns > MaxConnectionsLimit) {
		bad("max connections %d is out of range: use load.MaxConnections(n) with n from 1 to %d, or leave the default (no cap)",
			c.conns, MaxConnectionsLimit)
	}
	if c.kindSet && c.kind != timeline.ClientGateway && c.kind != timeline.ClientService && c.kind != timeline.ClientInCluster {
		bad("client kind %v is not one the harness runs: use load.Client(timeline.ClientGateway), timeline.ClientService or timeline.ClientInCluster", c.kind)
	}
	if c.kind == timeline.ClientGateway && c.router == nil && c.kindSet {
		bad("a gateway client routes requests itself: give it a router with load.ViaRouter(r)")
	}
	if c.name == "" {
		bad("name is empty: use load.Name(\"checkout-load\") or leave the default %q", DefaultName)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("load: invalid settings:\n%w", err)
	}
	return nil
}
