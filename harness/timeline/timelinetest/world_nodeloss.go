package timelinetest

import (
	"fmt"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// stop is a node powered off.
type stop struct {
	node string
	at   time.Duration
}

// PowerOff stops a node abruptly at `at`, as a failed host or a reclaimed
// spot instance: every pod on it that is running then dies with it, and
// nothing tells the API server. What follows, in the model:
//
//   - a request in flight, or sent later on a pooled connection, gets no
//     answer: the client gives up after ClientTimeout (a timeout, not a
//     reset: no kernel is left to send one); a new connection to such a pod
//     times out the same way;
//   - the pod stays Ready, and its endpoint ready, until the node
//     controller marks the node NotReady, NodeGrace after the power-off;
//     the pod's Ready condition then turns false and its endpoint not
//     ready (EndpointLag later), and kube-proxy and the gateway stop
//     routing to it after their own lags;
//   - a deletion of such a pod (SimPod.Delete: the taint manager's
//     eviction) is recorded, but no kubelet runs its preStop, signals it
//     or reports its exit: no ContainerExited, no SIGTERM in its log.
//
// The harness's NodeStopped event and the node's NotReady are on the
// timeline. See NodeLoss for the evictions and replacements as well.
func (w *World) PowerOff(node string, at time.Duration) *World {
	w.stops = append(w.stops, stop{node: node, at: at})
	return w
}

// NodeLoss powers node off at `at` and does what the cluster then does
// with its pods (the Deployment's, all of them): once the node is NotReady
// and the pods' toleration of node.kubernetes.io/unreachable has run out
// (NodeGrace + toleration after the loss), they are deleted and a
// replacement for each is created on node `to`, with its App. It returns
// the lost pods and their replacements.
func (w *World) NodeLoss(at time.Duration, node string, toleration time.Duration, to string) (lost, replacements []*SimPod) {
	w.PowerOff(node, at)
	evict := at + w.NodeGrace + toleration
	for _, p := range w.Pods() {
		if p.Node != node || p.created > at {
			continue
		}
		if d, ok := p.Deleted(); ok && d <= at {
			continue
		}
		lost = append(lost, p)
	}
	for i, p := range lost {
		p.Delete(evict)
		name := fmt.Sprintf("%s-n%d", namePrefix(p.Name), i+1)
		replacements = append(replacements, w.Pod(name, to, w.freeIP(p.IP), evict, p.App))
	}
	return lost, replacements
}

// lostAt is when the pod's node was powered off under it (Forever when it
// never was, or the pod did not run then).
func (w *World) lostAt(p *SimPod) time.Duration {
	for _, st := range w.stops {
		if st.node == p.Node && p.created <= st.at && p.deleted > st.at {
			return st.at
		}
	}
	return timeline.Forever
}

// nodeEvents are the harness's record of each power-off and the observer's
// of the node going NotReady.
func (w *World) nodeEvents() []timeline.Event {
	var out []timeline.Event
	for _, st := range w.stops {
		out = append(out,
			timeline.Event{Offset: st.at, Kind: timeline.EvNodeStopped, Node: st.node, Name: "node-loss"},
			timeline.Event{Offset: st.at + w.NodeGrace + w.WatchLag, Kind: timeline.EvNodeNotReady, Node: st.node,
				Detail: "Ready=Unknown (NodeStatusUnknown: Kubelet stopped posting node status.)"})
	}
	return out
}

// The service client's connections in a world with a lost node: each one
// comes from a random port of Linux's ephemeral range, and an attempt sent
// to a dead pod leaves an entry in the node's NAT table (unanswered,
// StaleNAT long) that sends a later connection from the same port to the
// same dead pod, whatever the Service's endpoints say by then: kube-proxy
// does not flush such entries for TCP.

const ephemeralPorts = 60999 - 32768 + 1

// staleNAT draws the connection's port and reports whether a NAT entry
// for it still leads to a dead pod (refreshing it).
func (s *sim) staleNAT(t time.Duration, cs *clientSim) bool {
	if len(s.w.stops) == 0 {
		return false // no lost node: the random draws of other worlds stay as they were
	}
	cs.natPort = 32768 + cs.rng.intn(ephemeralPorts)
	if until, ok := s.nat[cs.natPort]; ok && t < until {
		s.nat[cs.natPort] = t + s.w.StaleNAT
		return true
	}
	return false
}

// rememberNAT records the NAT entry of a connection sent to a dead pod.
func (s *sim) rememberNAT(t time.Duration, cs *clientSim) {
	if s.nat == nil {
		s.nat = map[int]time.Duration{}
	}
	s.nat[cs.natPort] = t + s.w.StaleNAT
}

// noAnswer is the outcome of a request to a pod whose machine is gone: the
// client waits ClientTimeout for an answer that never comes.
func (s *sim) noAnswer(url string) outcome {
	return outcome{lat: s.w.ClientTimeout, lost: true,
		text: fmt.Sprintf("Get %q: context deadline exceeded (Client.Timeout exceeded while awaiting headers)", url)}
}

// dialTimeout is the error of a new connection to a gone machine.
func dialTimeout(url, addr string) string {
	return fmt.Sprintf("Get %q: dial tcp %s: i/o timeout", url, addr)
}
