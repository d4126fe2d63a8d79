package timelinetest

import (
	"cmp"
	"container/heap"
	"fmt"
	"slices"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// NoEndpointStatus is the error text of the 503 the gateway client answers
// itself when the gateway routes to nothing: a copy of
// load.NoEndpointStatus (a test checks they agree), so that this package
// does not depend on the load generator and its libraries.
const NoEndpointStatus = "503 no ready endpoint to route to (answered by the gateway client)"

const (
	appPort    = 8080
	answerRTT  = time.Millisecond       // a refused connection, or an answer the app gives without work
	selfAnswer = 100 * time.Microsecond // the gateway client's own 503
	// The service client's target: the Service's NodePort from the host.
	nodePortAddr = "127.0.0.1:30080"
	// The host's address on the kind network, from which the gateway client
	// reaches pod addresses.
	gatewaySource = "172.18.0.1"
)

// conn is a client's TCP connection to a pod.
type conn struct {
	l    *life
	port int // the client's ephemeral port, for error texts
}

// clientSim is one client during a run.
type clientSim struct {
	Client
	idx     int
	rng     splitmix
	port    int
	perPod  map[*life][]*conn // gateway: idle connections per pod, most recent last
	natPort int               // service: the port of the connection being made (in a world with a lost node)
	idle    []*conn           // PlainGo: idle connections, most recent last
}

// request is one request of a client, across net/http's retries.
type request struct {
	ci, n int
	send  time.Duration
}

// item is an entry of the simulation's queue: a request attempt, or a
// connection coming back to its client's pool when its answer arrived.
type item struct {
	at      time.Duration
	release bool // before attempts at the same instant: a connection freed now can be reused now
	retry   bool // net/http re-sending a request
	ci, seq int
	conn    *conn
	req     *request
}

type queue []*item

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	a, b := q[i], q[j]
	if a.at != b.at {
		return a.at < b.at
	}
	if a.release != b.release {
		return a.release
	}
	return cmp.Or(cmp.Compare(a.ci, b.ci), cmp.Compare(a.seq, b.seq)) < 0
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*item)) }
func (q *queue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}

// splitmix64: a tiny generator whose sequence no Go release can change, so
// that a seed gives the same timeline everywhere.
type splitmix uint64

func (s *splitmix) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (s *splitmix) intn(n int) int { return int(s.next() % uint64(n)) }

// sim is the state of one run's requests.
type sim struct {
	w *World
	// nat holds, by client port, the node's NAT entries of connections
	// sent to a dead pod, until they expire (PowerOff).
	nat     map[int]time.Duration
	lives   []*life
	clients []*clientSim
	q       queue
	seq     int
	rr      uint64 // the gateway router's round-robin counter (one router for every gateway client)
	out     []result
}

type result struct {
	r     timeline.Request
	ci, n int
}

func (w *World) simulate(lives []*life, clients []Client) []timeline.Request {
	s := &sim{w: w, lives: lives}
	for i, c := range clients {
		cs := &clientSim{Client: c, idx: i, rng: splitmix(uint64(w.Seed) ^ uint64(i+1)*0xd1b54a32d192ed03),
			port: 40000 + 1000*i, perPod: map[*life][]*conn{}}
		s.clients = append(s.clients, cs)
		s.push(&item{at: c.From, ci: i, req: &request{ci: i, n: 0, send: c.From}})
	}
	for s.q.Len() > 0 {
		it := heap.Pop(&s.q).(*item)
		if it.release {
			s.release(it.at, s.clients[it.ci], it.conn)
			continue
		}
		cs := s.clients[it.ci]
		if !it.retry {
			// The pacer: the next request of this client.
			n := it.req.n + 1
			at := cs.From + time.Duration(int64(n)*int64(time.Second)/int64(cs.Rate))
			if at < cs.To {
				s.push(&item{at: at, ci: cs.idx, req: &request{ci: cs.idx, n: n, send: at}})
			}
		}
		switch {
		case cs.Kind == timeline.ClientGateway:
			s.gateway(it.at, cs, it.req)
		case cs.PlainGo:
			s.plainGo(it.at, cs, it.req)
		default:
			s.service(it.at, cs, it.req)
		}
	}
	slices.SortStableFunc(s.out, func(a, b result) int {
		return cmp.Or(cmp.Compare(a.r.Offset, b.r.Offset), cmp.Compare(a.ci, b.ci), cmp.Compare(a.n, b.n))
	})
	reqs := make([]timeline.Request, len(s.out))
	for i := range s.out {
		reqs[i] = s.out[i].r
	}
	return reqs
}

func (s *sim) push(it *item) {
	s.seq++
	it.seq = s.seq
	heap.Push(&s.q, it)
}

func (s *sim) record(req *request, r timeline.Request) {
	r.Err = timeline.ClassifyError(r.Code, r.ErrText)
	s.out = append(s.out, result{r: r, ci: req.ci, n: req.n})
}

// routed lists the pods whose interval contains t, as the gateway router
// orders them (by pod, then address).
func (s *sim) routed(t time.Duration, interval func(*life) (time.Duration, time.Duration)) []*life {
	var out []*life
	for _, l := range s.lives {
		if from, to := interval(l); from <= t && t < to {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b *life) int { return cmp.Or(cmp.Compare(a.p.Name, b.p.Name), cmp.Compare(a.p.IP, b.p.IP)) })
	return out
}

func (cs *clientSim) dial(l *life) *conn {
	cs.port++
	if cs.port >= 61000 {
		cs.port = 40000
	}
	return &conn{l: l, port: cs.port}
}

// takePod is an idle pooled connection to the pod, if the client has one
// the server has not closed. A connection the server closed while idle is
// noticed by the client (its read loop gets EOF) and dropped.
func (cs *clientSim) takePod(l *life, t time.Duration) *conn {
	if t >= l.keepAliveEnd {
		delete(cs.perPod, l)
		return nil
	}
	idle := cs.perPod[l]
	if len(idle) == 0 {
		return nil
	}
	c := idle[len(idle)-1]
	cs.perPod[l] = idle[:len(idle)-1]
	return c
}

// pruneIdle drops the PlainGo client's idle connections the server closed.
func (cs *clientSim) pruneIdle(t time.Duration) {
	cs.idle = slices.DeleteFunc(cs.idle, func(c *conn) bool { return t >= c.l.keepAliveEnd })
}

// takeIdle is the PlainGo client's most recently used idle connection, as
// net/http picks it.
func (cs *clientSim) takeIdle(t time.Duration) *conn {
	cs.pruneIdle(t)
	if len(cs.idle) == 0 {
		return nil
	}
	c := cs.idle[len(cs.idle)-1]
	cs.idle = cs.idle[:len(cs.idle)-1]
	return c
}

// release puts a connection whose answer arrived at t back into its pool,
// unless the server ends it: an answer with Connection: close (a graceful app
// shutting down), or a server that closes it at once.
func (s *sim) release(t time.Duration, cs *clientSim, c *conn) {
	if t >= c.l.keepAliveEnd {
		return
	}
	if cs.PlainGo {
		cs.pruneIdle(t)
		if len(cs.idle) < cs.Conns {
			cs.idle = append(cs.idle, c)
		}
		return
	}
	cs.perPod[c.l] = append(cs.perPod[c.l], c)
}

// outcome is what a request got from the app on a connection.
type outcome struct {
	code        int
	lat         time.Duration
	text        string
	lost        bool // the process died while it was in flight
	terminating bool // the answer said X-Terminating: true
}

// serve is the app's handling of a request that arrived at t on c.
func (s *sim) serve(l *life, t time.Duration, c *conn, reused bool, url, local, remote string) outcome {
	var o outcome
	if t >= l.lostAt {
		return s.noAnswer(url)
	}
	switch {
	case t-l.start < l.app.WarmUp:
		o.code, o.lat = 503, answerRTT
	default:
		l.served++
		if l.app.FailEvery > 0 && l.served%l.app.FailEvery == 0 {
			o.code, o.lat = 500, answerRTT
		} else {
			o.code, o.lat = 200, s.w.Latency
		}
	}
	if t < l.lostAt && l.lostAt < t+o.lat {
		// In flight when the machine died: no answer, no reset.
		o = s.noAnswer(url)
	} else if t < l.hardDeath && l.hardDeath < t+o.lat {
		// Killed mid-request: the kernel closes the socket. On a connection
		// that served before, net/http reports the early end as EOF.
		o = outcome{lat: l.hardDeath - t, lost: true}
		if reused {
			o.text = fmt.Sprintf("Get %q: EOF", url)
		} else {
			o.text = fmt.Sprintf("Get %q: read tcp %s:%d->%s: read: connection reset by peer", url, local, c.port, remote)
		}
	}
	switch o.code {
	case 503:
		o.text = "503 Service Unavailable"
	case 500:
		o.text = "500 Internal Server Error"
	}
	o.terminating = !o.lost && l.term <= t+o.lat
	l.spans = append(l.spans, span{at: t, end: t + o.lat, lost: o.lost})
	return o
}

func refusedText(url, addr string) string {
	return fmt.Sprintf("Get %q: dial tcp %s: connect: connection refused", url, addr)
}

// byHeaders attributes an answer by the app's headers, when it sets them.
func byHeaders(r *timeline.Request, l *life, o outcome) {
	if o.code == 0 || !l.app.Headers {
		return
	}
	r.Pod, r.Node, r.PodIP, r.Via, r.Terminating = l.p.Name, l.p.Node, l.p.IP, timeline.ViaHeaders, o.terminating
}

// gateway sends one request of the gateway client: to the next pod the
// gateway routes to, on a pooled connection to that pod if there is one.
func (s *sim) gateway(t time.Duration, cs *clientSim, req *request) {
	eps := s.routed(t, s.w.gatewayInterval)
	if len(eps) == 0 {
		s.record(req, timeline.Request{Offset: t, Latency: selfAnswer, Code: 503, ErrText: NoEndpointStatus,
			Client: timeline.ClientGateway})
		return
	}
	s.rr++
	l := eps[s.rr%uint64(len(eps))]
	addr := fmt.Sprintf("%s:%d", l.p.IP, appPort)
	url := "http://" + addr + "/"
	r := timeline.Request{Offset: t, Client: timeline.ClientGateway,
		Pod: l.p.Name, Node: l.p.Node, PodIP: l.p.IP, Via: timeline.ViaRoute}
	c := cs.takePod(l, t)
	if c == nil {
		if t >= l.lostAt {
			r.Latency, r.ErrText = s.w.ClientTimeout, dialTimeout(url, addr)
			s.record(req, r)
			return
		}
		if !l.listening(t) {
			r.Latency, r.ErrText = answerRTT, refusedText(url, addr)
			s.record(req, r)
			return
		}
		c = cs.dial(l)
	} else {
		r.Reused = true
	}
	o := s.serve(l, t, c, r.Reused, url, gatewaySource, addr)
	r.Latency, r.Code, r.ErrText = o.lat, o.code, o.text
	if o.code != 0 && l.app.Headers {
		r.Terminating = o.terminating
	}
	s.record(req, r)
	if !o.lost {
		s.push(&item{at: t + o.lat, release: true, ci: cs.idx, conn: c})
	}
}

// service sends one request of the service client: a new connection, which
// kube-proxy sends to a random pod it routes to.
func (s *sim) service(t time.Duration, cs *clientSim, req *request) {
	url := "http://" + nodePortAddr + "/"
	r := timeline.Request{Offset: t, Client: timeline.ClientService}
	if s.staleNAT(t, cs) {
		r.Latency, r.ErrText = s.w.ClientTimeout, dialTimeout(url, nodePortAddr)
		s.record(req, r)
		return
	}
	eps := s.routed(t, s.w.proxyInterval)
	if len(eps) == 0 {
		r.Latency, r.ErrText = answerRTT, refusedText(url, nodePortAddr)
		s.record(req, r)
		return
	}
	l := eps[cs.rng.intn(len(eps))]
	if t >= l.lostAt {
		s.rememberNAT(t, cs)
		r.Latency, r.ErrText = s.w.ClientTimeout, dialTimeout(url, nodePortAddr)
		s.record(req, r)
		return
	}
	if !l.listening(t) {
		r.Latency, r.ErrText = answerRTT, refusedText(url, nodePortAddr)
		s.record(req, r)
		return
	}
	o := s.serve(l, t, cs.dial(l), false, url, "127.0.0.1", nodePortAddr)
	r.Latency, r.Code, r.ErrText = o.lat, o.code, o.text
	byHeaders(&r, l, o)
	s.record(req, r)
}

// plainGo sends one attempt of a plain Go client's request: on its most
// recently used idle connection, or a new one through kube-proxy. An attempt
// that failed on a reused connection is sent again at once, as net/http
// does for a GET; the request is recorded once, when it is final.
func (s *sim) plainGo(t time.Duration, cs *clientSim, req *request) {
	url := "http://" + nodePortAddr + "/"
	r := timeline.Request{Offset: req.send, Client: timeline.ClientService}
	final := func(end time.Duration) {
		r.Latency = end - req.send
		s.record(req, r)
	}
	c := cs.takeIdle(t)
	if c == nil {
		eps := s.routed(t, s.w.proxyInterval)
		if len(eps) == 0 {
			r.ErrText = refusedText(url, nodePortAddr)
			final(t + answerRTT)
			return
		}
		l := eps[cs.rng.intn(len(eps))]
		if t >= l.lostAt {
			r.ErrText = dialTimeout(url, nodePortAddr)
			final(t + s.w.ClientTimeout)
			return
		}
		if !l.listening(t) {
			r.ErrText = refusedText(url, nodePortAddr)
			final(t + answerRTT)
			return
		}
		c = cs.dial(l)
	} else {
		r.Reused = true
	}
	o := s.serve(c.l, t, c, r.Reused, url, "127.0.0.1", nodePortAddr)
	if o.lost {
		if r.Reused {
			s.push(&item{at: t + o.lat, retry: true, ci: cs.idx, req: req}) // net/http's transparent retry
			return
		}
	} else {
		s.push(&item{at: t + o.lat, release: true, ci: cs.idx, conn: c})
	}
	r.Code, r.ErrText = o.code, o.text
	byHeaders(&r, c.l, o)
	final(t + o.lat)
}
