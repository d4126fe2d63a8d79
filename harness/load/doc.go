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
//     kind by timeline.ClassifyError, client kind, connection reuse, the pod
//     it was routed to, and the rehearsal app's attribution headers when
//     present, which vegeta keeps in Result.Headers). Nothing is buffered
//     beyond the timeline itself; vegeta's own allocations per request are
//     most of the cost;
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
// # The clients
//
// A rehearsal runs two kinds of client, each like a class of real clients,
// each judged on its own (timeline.ClientKind on every request):
//
//   - the gateway client (ViaRouter) behaves like an ingress controller or a
//     service mesh: a Router (harness/gateway) follows the Service's
//     endpoints, the client sends each request straight to the pod the
//     router picks, over keep-alive connections pooled per pod, so it knows
//     which pod every request went to, failed or not (timeline.ViaRoute);
//   - the service client sends to one fixed URL (the Service through
//     kube-proxy: a NodePort) with a new connection per request, like a
//     client behind a load balancer. It learns the pod only from response
//     headers, when the app sets them.
//
// Neither retries. Go's http.Transport silently re-sends a request that
// failed on a reused keep-alive connection when the request is replayable (a
// GET without a body, for instance): exactly what happens to requests in
// flight when a pod dies, so the loss would never reach the timeline. Every
// request the harness sends is made non-replayable (see noRetryBody), and
// each result says whether its connection was reused (Request.Reused); a
// request that failed on a pooled connection the server had already closed,
// before it could be written, is ErrClosedIdle. TransparentRetry turns the
// retry back on, only to show what plain Go clients miss
// (TestTransparentRetryHidesLostRequests).
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
