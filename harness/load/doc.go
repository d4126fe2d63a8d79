// Package load drives the rehearsal's client traffic: a constant request rate
// against one URL, every result streamed onto the rehearsal's timeline.
//
// # Design
//
// The traffic itself is the vegeta library's (github.com/tsenart/vegeta/v12/lib):
// its constant pacer, its attacker with a self-growing worker pool, its Result.
// This package adds what a rehearsal needs around it and nothing else:
//
//   - bounds (1 to 5000 requests per second, 1 s to 2 h, a per-request timeout,
//     a ceiling on workers), checked by New with an error that names the setting
//     and the fix, so a typo cannot turn a laptop into a load cannon or run all
//     night;
//   - a client configured for rehearsals (see below), handed to vegeta through
//     its vegeta.Client option;
//   - streaming: each vegeta Result becomes one timeline.Request as it arrives
//     (send offset on the timeline's monotonic clock, latency, status, error
//     kind by timeline.ClassifyError, and the X-Pod-Name / X-Node-Name /
//     X-Pod-IP / X-Terminating attribution headers, which vegeta keeps in
//     Result.Headers). Nothing is buffered beyond the timeline itself, and the
//     conversion allocates nothing: vegeta's own allocations per request are
//     the whole cost;
//   - stopping: at the end of the duration (vegeta stops itself), on Stop
//     (in-flight requests finish, bounded by the timeout, and are recorded), or
//     when the context ends, for Ctrl-C (an abort: every connection is closed at
//     once so the run ends within milliseconds, and results of requests cut
//     short by the abort are counted as abandoned, never recorded as failures
//     the application did not cause);
//   - two notes on the timeline, when the load started (with its settings) and
//     when it ended (with its summary). Notes, not actions: a verdict lists the
//     events around an outage as evidence, and "load running" explains nothing.
//
// # The client
//
// HTTP/1.1 only. kube-proxy and most Service load balancers balance
// connections, not requests; an HTTP/2 client multiplexes everything onto one
// connection and would talk to a single pod.
//
// No proxy from the environment: a corporate HTTP_PROXY would put a proxy
// between the load and the target and the timeline would measure the proxy.
//
// Redirects are not followed: a 3xx answer is the target's answer (a success).
//
// Keep-alive is on by default, as in real clients and in vegeta, and that has a
// consequence a rehearsal must know about. Go's http.Transport silently
// retries a request that failed on a reused keep-alive connection when the
// request is replayable (GET, HEAD, OPTIONS, TRACE, or carrying an
// Idempotency-Key header) and the server closed or reset the connection
// before the first response byte (persistConn.shouldRetryRequest in
// net/http). That is exactly what an abrupt shutdown does to requests in
// flight: the process dies, the kernel resets its connections, and the
// transport quietly re-sends the GET on a new connection, which the Service
// routes to another pod. The client sees a success with a longer latency; the
// loss never reaches the timeline. Real Go clients behave the same way, so
// keep-alive on measures what Go users would see; KeepAlive(false) gives every
// request its own connection, which is never "reused", so every request lost
// by the server shows up (as eof or reset). Rehearsals judging graceful
// shutdown should run with keep-alive off, or with a method that is not
// replayable. TestKeepAliveHidesLostRequests demonstrates the difference.
//
// # Workers and connections
//
// vegeta starts a few workers and adds one whenever all are busy, so that slow
// answers do not lower the sending rate. Sustaining the rate while every
// request times out needs rate × timeout requests in flight; that is the
// default ceiling on workers (at least 10, at most MaxWorkersLimit). Past the
// ceiling the sending rate sags and then catches up, which shows on the
// timeline as a gap followed by a burst. The number of open connections is by
// default bounded only by the workers; MaxConnections caps it.
package load
