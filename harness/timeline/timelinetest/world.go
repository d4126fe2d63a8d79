package timelinetest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// World is a deterministic discrete-event simulation of the pieces a
// rehearsal's timeline comes from: pods of the rehearsal app (fixtures/app)
// managed by a kubelet and a Deployment, the EndpointSlice controller,
// kube-proxy, the gateway router (harness/gateway), the load's clients
// (harness/load) and the observer (harness/observe). Run returns the timeline
// the real harness would have recorded, so that verdicts can be tested on the
// subtle effects of the real world without a cluster.
//
// # The model
//
// A pod created at C gets its sandbox and IP at C+0.5s and its process starts
// at C+1s. Its Ready condition follows the kubelet's readiness probe, run
// every ProbePeriod from the process start against the app's /readyz
// (success threshold 1, failure threshold 2, as fixtures/appspec sets it):
// an honest app passes once warmed up and fails once its graceful shutdown
// began (or its listener closed); a lying app passes from the start; an app
// without probe ("none") is Ready while its container runs. A container
// exit makes the pod NotReady at once.
//
// Deleting a pod at D: the kubelet runs the preStop sleep, sends SIGTERM at
// D+min(PreStop, Grace) and SIGKILL at max(D+Grace, SIGTERM+2s) (the kubelet
// gives the stop at least 2 s after a preStop that used up the grace
// period). On SIGTERM the app does what fixtures/app does in its mode:
//
//   - graceful: readiness fails and keep-alives end (idle connections are
//     closed, every later answer says Connection: close), serving continues
//     for DrainDelay, then the listener closes (new connections refused),
//     requests in flight finish, and the process exits 0 once they have;
//   - nodrain: graceful with no drain delay: the listener closes at SIGTERM;
//   - abrupt: the process exits 143 at once: requests in flight are lost;
//   - ignore: it keeps serving until SIGKILL (exit 137), which loses the
//     requests in flight then. SIGKILL ends any mode still running.
//
// The EndpointSlice controller writes each change of a pod (IP assigned,
// Ready, deletion: the endpoint turns terminating, not ready; exit: it is
// removed) EndpointLag after it. kube-proxy routes by the slices ProxyLag
// after they change, the gateway GatewayDelay after (and, as Router.Start,
// applies the state at offset 0 at once). The observer records every change
// WatchLag after it happened; the app's log lines carry the app's own time.
//
// Clients send at a constant rate. The gateway client round-robins over what
// the gateway routes and keeps keep-alive connections pooled per pod; the
// service client makes a new connection per request, which kube-proxy sends
// to a random routed endpoint (seeded by Seed); a PlainGo client pools a few
// connections, each pinned to the pod kube-proxy chose when it was opened,
// and, like net/http, silently re-sends a GET that failed on a reused
// connection. What each request meets at its pod:
//
//   - listener open: the answer after Latency (200), or at once a 503 during
//     warm-up or a 500 for every FailEvery-th request, as the app does;
//   - the process dies (abrupt exit, SIGKILL) while the request is in flight:
//     the request fails then, with EOF on a reused connection, "connection
//     reset by peer" on a new one (an in-flight loss);
//   - listener closed or process gone: a new connection is refused; a pooled
//     connection the server had closed is noticed by the client before reuse
//     and replaced by a new one (refused in turn if the listener is closed).
//
// # Simplifications
//
// The network costs nothing but the round trip of a refused connection or an
// answer without work (1 ms); a request's time at the app is Latency. The
// kubelet, the Deployment controller and the app react at once (no PLEG
// relist, no probe jitter, no http.Server.Shutdown poll interval), the
// deletion of the pod object from the API coincides with its exit, and
// graceful shutdown has no shutdown timeout. The race in which a client
// writes on a pooled connection at the very moment the server closes it
// (timeline.ErrClosedIdle) is not modelled: the usual case is that the client
// noticed the close. The app's preStop is Kubernetes' sleep handler, so the
// app learns of termination at SIGTERM. Pods are not restarted after an
// exit, and nothing fails on its own: pods stop only when deleted. The load's
// own notes and the Kubernetes Events the observer records as notes are left
// out.
//
// Set the delays before adding pods: RollingRestart computes when each new
// pod becomes Ready as it is called. A World is not safe for concurrent use;
// Run does not change it, so Run may be called again (with the same or other
// clients) and gives the same timeline for the same World and clients.
type World struct {
	WatchLag     time.Duration // a change happens -> the observer's watch delivers it (events are stamped at delivery)
	EndpointLag  time.Duration // pod readiness/deletion -> the EndpointSlice controller writes it
	ProxyLag     time.Duration // EndpointSlice change -> kube-proxy routes accordingly (service client)
	GatewayDelay time.Duration // EndpointSlice change -> the gateway routes accordingly (gateway client); harness/gateway's sync delay
	ProbePeriod  time.Duration // readiness probe period (a failing probe makes the pod NotReady after 2 periods)
	Latency      time.Duration // time the app takes per request
	Seed         int64         // seeds kube-proxy's random choice of endpoint: same seed, same timeline
	// NodeGrace is how long a node that stopped talking stays Ready: the
	// node controller's --node-monitor-grace-period (PowerOff).
	NodeGrace time.Duration
	// ClientTimeout is how long a client waits for a connection or an
	// answer that never comes (harness/load's timeout).
	ClientTimeout time.Duration
	// StaleNAT is how long a node's NAT entry of a connection sent to a
	// dead pod lives (Linux's nf_conntrack_tcp_timeout_syn_sent).
	StaleNAT time.Duration

	pods     []*SimPod
	stops    []stop
	phases   []phaseSpan
	names    map[string]int  // pod name -> how many pods had it, for unique UIDs
	ips      map[string]bool // every pod IP handed out
	restarts int
}

type phaseSpan struct {
	name     string
	from, to time.Duration
}

// NewWorld returns a World with the delays of a quiet kind cluster and the
// harness's defaults.
func NewWorld() *World {
	return &World{
		WatchLag:      30 * time.Millisecond,
		EndpointLag:   50 * time.Millisecond,
		ProxyLag:      800 * time.Millisecond,
		GatewayDelay:  time.Second, // harness/gateway.DefaultSyncDelay
		ProbePeriod:   time.Second,
		Latency:       20 * time.Millisecond,
		NodeGrace:     50 * time.Second, // kube-controller-manager's default since Kubernetes 1.32
		ClientTimeout: 2 * time.Second,
		StaleNAT:      120 * time.Second,
		names:         map[string]int{},
		ips:           map[string]bool{},
	}
}

// Shutdown modes and readiness modes of App, as fixtures/app names them
// ("nodrain" is the no-drain preset: graceful with no drain delay).
const (
	ShutdownGraceful = "graceful"
	ShutdownNoDrain  = "nodrain"
	ShutdownAbrupt   = "abrupt"
	ShutdownIgnore   = "ignore"

	ReadinessHonest = "honest"
	ReadinessLying  = "lying"
	ReadinessNone   = "none"
)

// DefaultGrace is Kubernetes' default terminationGracePeriodSeconds.
const DefaultGrace = 30 * time.Second

// App is how a pod's process behaves, mirroring the settings of fixtures/app
// and of the pod spec around it. The zero value is a graceful app with
// honest readiness, no drain delay, no warm-up and no attribution headers.
type App struct {
	Shutdown   string        // "graceful" (default) | "abrupt" | "ignore" | "nodrain" (graceful with DrainDelay 0)
	DrainDelay time.Duration // graceful: keep serving (readiness failing, keep-alives off) this long after SIGTERM, then close the listener, finish in-flight, exit 0
	WarmUp     time.Duration // the main path answers 503 for this long after the process started
	Readiness  string        // "honest" (default: ready only after warm-up, not once shutting down) | "lying" (ready at start) | "none" (no probe: ready while running)
	Headers    bool          // the app sets X-Pod-Name etc. (attribution by headers); false: like a real user's app
	FailEvery  int           // every Nth request the app would serve is answered 500 (0: never)
	PreStop    time.Duration // preStop sleep before SIGTERM
	Grace      time.Duration // terminationGracePeriodSeconds (0: DefaultGrace): SIGKILL (exit 137) at deletion+Grace if still running
}

// withDefaults fills the defaults in and rejects what fixtures/app would.
func (a App) withDefaults() App {
	switch a.Shutdown {
	case "":
		a.Shutdown = ShutdownGraceful
	case ShutdownNoDrain:
		a.DrainDelay = 0
	case ShutdownGraceful, ShutdownAbrupt, ShutdownIgnore:
	default:
		panic(fmt.Sprintf("timelinetest: App.Shutdown %q: use graceful, nodrain, abrupt or ignore", a.Shutdown))
	}
	switch a.Readiness {
	case "":
		a.Readiness = ReadinessHonest
	case ReadinessHonest, ReadinessLying, ReadinessNone:
	default:
		panic(fmt.Sprintf("timelinetest: App.Readiness %q: use honest, lying or none", a.Readiness))
	}
	if a.Grace <= 0 {
		a.Grace = DefaultGrace
	}
	if a.DrainDelay < 0 || a.WarmUp < 0 || a.PreStop < 0 || a.FailEvery < 0 {
		panic("timelinetest: App durations and FailEvery must not be negative")
	}
	return a
}

// SimPod is a pod of a World. Its fields describe it; change it only
// through its methods.
type SimPod struct {
	Name, UID, Node, IP string
	App                 App // with defaults filled in

	created time.Duration
	deleted time.Duration // Forever when never deleted
	order   int           // creation order in the world, for stable ordering
}

// Created is when the pod was created.
func (p *SimPod) Created() time.Duration { return p.created }

// Deleted is when the pod's deletion was requested, and whether it was.
func (p *SimPod) Deleted() (time.Duration, bool) { return p.deleted, p.deleted != timeline.Forever }

// Pod adds a pod created at `at` (negative offsets are allowed: such a pod is
// already running when the rehearsal starts, and the observer and the
// gateway find it in their initial state at 0) on a node with an IP. Its
// process starts 1 s later and it becomes Ready per its App.
func (w *World) Pod(name, node, ip string, at time.Duration, app App) *SimPod {
	if name == "" || ip == "" {
		panic("timelinetest: a pod needs a name and an IP")
	}
	w.names[name]++
	uid := "uid-" + name
	if n := w.names[name]; n > 1 {
		uid += "-" + strconv.Itoa(n) // a pod name may come back (a StatefulSet's); its UID does not
	}
	w.ips[ip] = true
	p := &SimPod{Name: name, UID: uid, Node: node, IP: ip, App: app.withDefaults(),
		created: at, deleted: timeline.Forever, order: len(w.pods)}
	w.pods = append(w.pods, p)
	return p
}

// Pods lists the world's pods in the order they were added.
func (w *World) Pods() []*SimPod { return append([]*SimPod(nil), w.pods...) }

// Delete requests the pod's deletion at `at` (kubectl delete, an eviction, a
// Deployment scaling its old ReplicaSet down): the preStop wait, SIGTERM,
// SIGKILL at the end of the grace period, exit, endpoint removal follow. A
// second deletion of a pod already deleting changes nothing, as in
// Kubernetes.
func (p *SimPod) Delete(at time.Duration) {
	if at < p.created {
		panic(fmt.Sprintf("timelinetest: pod %s deleted at %v, before it was created at %v", p.Name, at, p.created))
	}
	p.deleted = min(p.deleted, at)
}

// RollingRestart replaces each pod of old, in order, one at a time, as a
// Deployment with maxSurge 1 and maxUnavailable 0 does: a new pod is created
// (at `at` for the first) on the node of the pod it replaces, and when the
// Deployment controller sees it Ready (WatchLag after its Ready condition
// turned true) the old pod is deleted and the next new pod created. New pods
// run app, or the old pod's App when app is the zero App. A new pod that
// never becomes Ready stalls the rollout there, as it would stall a real one:
// the remaining old pods are kept and no more pods are created.
//
// New pods are named from the old pods' prefix ("web-1" -> "web-r1-1",
// "web-r1-2"..., r counting the world's rolling restarts) and get unused IPs
// in their old pod's /24. It returns the new pods.
func (w *World) RollingRestart(at time.Duration, old []*SimPod, app App) []*SimPod {
	if len(old) == 0 {
		return nil
	}
	w.restarts++
	prefix := namePrefix(old[0].Name)
	var out []*SimPod
	t := at
	for i, o := range old {
		a := app
		if a == (App{}) {
			a = o.App
		}
		name := fmt.Sprintf("%s-r%d-%d", prefix, w.restarts, i+1)
		n := w.Pod(name, o.Node, w.freeIP(o.IP), t, a)
		out = append(out, n)
		ready := w.firstReady(n)
		if ready == timeline.Forever {
			break
		}
		t = ready + w.WatchLag
		o.Delete(t)
	}
	return out
}

// Phase marks a phase [from, to) on the timelines Run returns, so a test can
// write w.Phase("baseline", 0, S(5)).Phase("fault", S(5), S(20)).
func (w *World) Phase(name string, from, to time.Duration) *World {
	w.phases = append(w.phases, phaseSpan{name: name, from: from, to: to})
	return w
}

var restartSuffix = regexp.MustCompile(`-r[0-9]+-[0-9]+$`)

// namePrefix is a pod name without what tells replicas apart.
func namePrefix(name string) string {
	if loc := restartSuffix.FindStringIndex(name); loc != nil {
		return name[:loc[0]]
	}
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		return name[:i]
	}
	return name
}

// freeIP is an address not handed out yet in the /24 of like (IPv4), or
// like with a counter appended otherwise.
func (w *World) freeIP(like string) string {
	parts := strings.Split(like, ".")
	if len(parts) == 4 {
		base := strings.Join(parts[:3], ".")
		for last := 10; last < 255; last++ {
			ip := base + "." + strconv.Itoa(last)
			if !w.ips[ip] {
				return ip
			}
		}
	}
	for n := 2; ; n++ {
		ip := like + "-" + strconv.Itoa(n)
		if !w.ips[ip] {
			return ip
		}
	}
}

// Client is one client of the load (harness/load): a constant rate of GET
// requests in [From, To).
type Client struct {
	Kind     timeline.ClientKind // ClientGateway or ClientService
	Rate     int                 // requests per second, evenly spaced
	From, To time.Duration       // From >= 0

	// PlainGo makes a service-kind client behave like a plain Go
	// http.Client with keep-alive, not like the harness's service client: a
	// few pooled idle connections (Conns, default 2, net/http's
	// DefaultMaxIdleConnsPerHost), each pinned to the pod kube-proxy chose
	// when it was opened, and net/http's silent retry of a GET that failed on
	// a reused connection (the retry takes another connection, usually to
	// another pod; only the final outcome is recorded, with the total
	// latency). Recorded with kind ClientService. It shows what a verdict
	// must not be fooled by: in-flight losses such a client hides.
	PlainGo bool
	Conns   int
}

// Run simulates the clients against everything added so far and returns the
// timeline, with requests and events as the real load, gateway and observer
// would have recorded them, and the phases marked with Phase.
func (w *World) Run(clients ...Client) *timeline.Timeline { return w.Build(clients...).TL }

// Build is Run returning a Builder around the timeline, to add more records
// with the Builder's methods.
func (w *World) Build(clients ...Client) *Builder {
	checked := make([]Client, len(clients))
	for i, c := range clients {
		checked[i] = c.checked()
	}
	clients = checked
	b := New()
	b.Latency = w.Latency
	b.TL.SetMeta("source", fmt.Sprintf("timelinetest.World (simulated), seed %d", w.Seed))
	lives := w.lives()
	reqs := w.simulate(lives, clients)
	for _, l := range lives {
		l.finish()
	}
	gateway := false
	for _, c := range clients {
		gateway = gateway || c.Kind == timeline.ClientGateway
	}
	for _, e := range w.events(lives, gateway) {
		b.TL.AddEvent(e)
	}
	for _, r := range reqs {
		b.TL.AddRequest(r)
	}
	return b
}

func (c Client) checked() Client {
	switch {
	case c.Kind != timeline.ClientGateway && c.Kind != timeline.ClientService:
		panic(fmt.Sprintf("timelinetest: client kind %v: use ClientGateway or ClientService", c.Kind))
	case c.PlainGo && c.Kind != timeline.ClientService:
		panic("timelinetest: a PlainGo client goes through the Service: give it Kind ClientService")
	case c.Rate <= 0:
		panic("timelinetest: a client needs a positive Rate")
	case c.From < 0 || c.To <= c.From:
		panic(fmt.Sprintf("timelinetest: client from %v to %v: need 0 <= From < To", c.From, c.To))
	}
	if c.PlainGo && c.Conns <= 0 {
		c.Conns = 2
	}
	return c
}

// sat adds durations, saturating at Forever (which stands for "never").
func sat(a, b time.Duration) time.Duration {
	if a == timeline.Forever || b == timeline.Forever {
		return timeline.Forever
	}
	return a + b
}
