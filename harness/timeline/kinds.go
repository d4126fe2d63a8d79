package timeline

import (
	"fmt"
	"strings"
)

// ErrorKind says how a request failed, as a client sees it. The zero value
// (ErrNone) means the request succeeded.
type ErrorKind uint8

// The error kinds. Their string names (String, MarshalText) are part of the
// saved-timeline format: do not rename them.
const (
	ErrNone    ErrorKind = iota // success: a 1xx-3xx response and no transport error
	ErrHTTP5xx                  // the server (or a gateway) answered 5xx
	ErrHTTP4xx                  // the server answered 4xx
	ErrRefused                  // no connection could be made: refused, no route, unreachable
	ErrReset                    // the connection was reset or broke (broken pipe) mid-request
	ErrTimeout                  // the client gave up waiting (client timeout, i/o timeout, deadline)
	ErrEOF                      // the server closed the connection without (a complete) answer
	ErrDNS                      // the name did not resolve
	ErrOther                    // anything else
	// ErrClosedIdle: a pooled keep-alive connection had been closed by the
	// server before the request could be written on it (the server closed
	// an idle connection while the client still routed to it).
	ErrClosedIdle
	// ErrClient: the load generator itself failed (out of file descriptors
	// or ephemeral ports...). Never blamed on the application.
	ErrClient
	numErrorKinds
)

var errorKindNames = [numErrorKinds]string{
	ErrNone:       "none",
	ErrHTTP5xx:    "http5xx",
	ErrHTTP4xx:    "http4xx",
	ErrRefused:    "refused",
	ErrReset:      "reset",
	ErrTimeout:    "timeout",
	ErrEOF:        "eof",
	ErrDNS:        "dns",
	ErrOther:      "other",
	ErrClosedIdle: "closed-idle",
	ErrClient:     "client",
}

// ErrorKinds lists every kind, ErrNone first, in a stable order (for tables).
func ErrorKinds() []ErrorKind {
	out := make([]ErrorKind, numErrorKinds)
	for i := range out {
		out[i] = ErrorKind(i)
	}
	return out
}

func (k ErrorKind) String() string {
	if k < numErrorKinds {
		return errorKindNames[k]
	}
	return fmt.Sprintf("ErrorKind(%d)", uint8(k))
}

// IsConnection reports whether the kind is a transport-level failure: the
// request never got an HTTP answer (refused, reset, timeout, EOF, a pooled
// connection found closed).
func (k ErrorKind) IsConnection() bool {
	switch k {
	case ErrRefused, ErrReset, ErrTimeout, ErrEOF, ErrClosedIdle:
		return true
	}
	return false
}

// IsApp reports whether a failure of this kind may be blamed on what the
// client talked to: every failure except the client's own (ErrClient).
func (k ErrorKind) IsApp() bool { return k != ErrNone && k != ErrClient }

// MarshalText implements encoding.TextMarshaler.
func (k ErrorKind) MarshalText() ([]byte, error) {
	if k >= numErrorKinds {
		return nil, fmt.Errorf("timeline: unknown error kind %d", uint8(k))
	}
	return []byte(errorKindNames[k]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *ErrorKind) UnmarshalText(b []byte) error {
	v, err := ParseErrorKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// ParseErrorKind is the inverse of ErrorKind.String.
func ParseErrorKind(s string) (ErrorKind, error) {
	for i, n := range errorKindNames {
		if n == s {
			return ErrorKind(i), nil
		}
	}
	return ErrOther, fmt.Errorf("timeline: unknown error kind %q", s)
}

// ClassifyError maps what a client saw (HTTP status, 0 when there was no
// response, and the error text as Go's net/http or vegeta report it) to an
// ErrorKind.
//
// An HTTP status of 400 or more wins over the text (vegeta sets the text to
// the status line for such answers). Otherwise a non-empty text is matched
// against the messages Go's net, net/http and context packages produce; name
// resolution is tested before timeouts because a DNS lookup that times out
// ("lookup web on 10.96.0.10:53: i/o timeout") is a DNS failure.
func ClassifyError(statusCode int, errText string) ErrorKind {
	switch {
	case statusCode >= 500:
		return ErrHTTP5xx
	case statusCode >= 400:
		return ErrHTTP4xx
	}
	if errText == "" {
		if statusCode >= 100 {
			return ErrNone
		}
		return ErrOther // no answer and no error: nothing to go on
	}
	s := strings.ToLower(errText)
	has := func(subs ...string) bool {
		for _, sub := range subs {
			if strings.Contains(s, sub) {
				return true
			}
		}
		return false
	}
	switch {
	case has("too many open files", "cannot assign requested address", "no buffer space available"):
		// The client ran out of its own resources: nothing reached the target.
		return ErrClient
	case has("server closed idle connection"):
		return ErrClosedIdle
	case has("no such host", "server misbehaving", "name resolution", "lookup "):
		return ErrDNS
	case has("connection refused", "no route to host", "network is unreachable", "host is unreachable"):
		return ErrRefused
	case has("connection reset", "broken pipe", "forcibly closed"):
		return ErrReset
	case has("timeout", "deadline exceeded", "timed out"):
		return ErrTimeout
	case has("eof", "closed network connection"):
		return ErrEOF
	}
	return ErrOther
}

// EventKind says what happened in the cluster or in the harness.
type EventKind uint8

// The event kinds. Their string names are part of the saved-timeline format.
const (
	EvUnknown              EventKind = iota // never recorded; the zero value
	EvPodScheduled                          // Pod, Node: the pod was bound to a node
	EvPodReady                              // Pod: the pod's Ready condition became true
	EvPodNotReady                           // Pod: the pod's Ready condition became false
	EvPodDeletionRequested                  // Pod: deletionTimestamp set (eviction or delete); SIGTERM follows
	EvContainerExited                       // Pod: the app container terminated; ExitCode, Reason; Value: how long before it was seen (by the kubelet's finishedAt)
	EvEndpointAdded                         // IP, Pod: the address appeared in the Service's endpoints, ready
	EvEndpointRemoved                       // IP, Pod: the address left the Service's endpoints
	EvEndpointNotReady                      // IP, Pod: the address is present but not ready (also when first seen so)
	EvEndpointReady                         // IP, Pod: the address became ready (also when first seen so)
	EvNodeAdded                             // Node
	EvNodeCordoned                          // Node
	EvNodeUncordoned                        // Node
	EvNodeDeleted                           // Node
	EvNodeReady                             // Node
	EvNodeNotReady                          // Node
	EvEvictionRefused                       // Pod, Node: eviction refused (HTTP 429, a PodDisruptionBudget)
	EvPhaseStart                            // Name: a rehearsal phase began ("baseline", "fault", "recovery")
	EvPhaseEnd                              // Name: the phase ended
	EvActionStart                           // Name: the harness began an action ("drain kind-worker2")
	EvActionEnd                             // Name: the action finished; Detail holds an error, if any
	EvFaultInjected                         // Name: a fault was applied
	EvFaultReverted                         // Name: a fault was undone
	EvNote                                  // Detail: free text
	EvRouteAdded                            // Client, Pod, UID, IP, Node: a client (the gateway) began routing to the endpoint
	EvRouteRemoved                          // Client, Pod, UID, IP, Node: a client stopped routing to the endpoint
	EvWatchInterrupted                      // Name: a watch failed; changes may be seen late or missed until it resumes (Detail: the error)
	EvWatchResumed                          // Name: the watch listed or watched again after an interruption
	EvWatchLag                              // Value: how long a change the harness made took to reach its watch
	EvAppLog                                // Pod, UID, Name: a lifecycle line the app logged ("sigterm received"), at the app's own time
	EvEvictionRequested                     // Pod, Node: a drain asked the API to evict the pod (its first attempt)
	EvDrainStarted                          // Node: a drain began (the node is cordoned)
	EvDrainFinished                         // Node: the drain ended; Detail holds its error, if any
	EvNodeRequested                         // Node, Detail: the harness asked for a node (surge or reimage) from an image
	EvBatchStarted                          // Name, Detail: an upgrade batch began (its nodes)
	EvBatchFinished                         // Name: the batch ended; Detail holds an error, if any
	EvAPIUnavailable                        // Detail: the API server's /readyz failed or did not answer within 1 s (why)
	EvAPIAvailable                          // the API server answers again
	EvNodeVersionChanged                    // Node, Detail: the kubelet's version changed in place ("kubelet v1.33.13 -> v1.34.4")
	// EvNodeStopped: Node: the harness stopped the node abruptly (its
	// machine powered off: no drain, no goodbye to the API server).
	EvNodeStopped
	// EvNodeCgroup: Node, Name (the node's cgroup version: "v1" or "v2"),
	// Detail (the kubelet's cgroup driver, when known), Reason ("emulated"
	// for a VM node under QEMU's software emulation, whose CPU runs about
	// 15 times slower than the host's).
	EvNodeCgroup
	// EvResourceSample: Pod, UID, Node, Name (the phase it was taken at the
	// end of), Detail (a ResourceSample as JSON): what the pod's runtime
	// saw of its limits and what it used.
	EvResourceSample
	// EvClusterDNS: Name (how many endpoints of the cluster's DNS Service,
	// kube-system/kube-dns, are ready: a number), Detail (which): recorded
	// at the start and whenever that number changes.
	EvClusterDNS
	numEventKinds
)

var eventKindNames = [numEventKinds]string{
	EvUnknown:              "Unknown",
	EvPodScheduled:         "PodScheduled",
	EvPodReady:             "PodReady",
	EvPodNotReady:          "PodNotReady",
	EvPodDeletionRequested: "PodDeletionRequested",
	EvContainerExited:      "ContainerExited",
	EvEndpointAdded:        "EndpointAdded",
	EvEndpointRemoved:      "EndpointRemoved",
	EvEndpointNotReady:     "EndpointNotReady",
	EvEndpointReady:        "EndpointReady",
	EvNodeAdded:            "NodeAdded",
	EvNodeCordoned:         "NodeCordoned",
	EvNodeUncordoned:       "NodeUncordoned",
	EvNodeDeleted:          "NodeDeleted",
	EvNodeReady:            "NodeReady",
	EvNodeNotReady:         "NodeNotReady",
	EvEvictionRefused:      "EvictionRefused",
	EvPhaseStart:           "PhaseStart",
	EvPhaseEnd:             "PhaseEnd",
	EvActionStart:          "ActionStart",
	EvActionEnd:            "ActionEnd",
	EvFaultInjected:        "FaultInjected",
	EvFaultReverted:        "FaultReverted",
	EvNote:                 "Note",
	EvRouteAdded:           "RouteAdded",
	EvRouteRemoved:         "RouteRemoved",
	EvWatchInterrupted:     "WatchInterrupted",
	EvWatchResumed:         "WatchResumed",
	EvWatchLag:             "WatchLag",
	EvAppLog:               "AppLog",
	EvEvictionRequested:    "EvictionRequested",
	EvDrainStarted:         "DrainStarted",
	EvDrainFinished:        "DrainFinished",
	EvNodeRequested:        "NodeRequested",
	EvBatchStarted:         "BatchStarted",
	EvBatchFinished:        "BatchFinished",
	EvAPIUnavailable:       "APIUnavailable",
	EvAPIAvailable:         "APIAvailable",
	EvNodeVersionChanged:   "NodeVersionChanged",
	EvNodeStopped:          "NodeStopped",
	EvNodeCgroup:           "NodeCgroup",
	EvResourceSample:       "ResourceSample",
	EvClusterDNS:           "ClusterDNS",
}

func (k EventKind) String() string {
	if k < numEventKinds {
		return eventKindNames[k]
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// IsEndpoint reports whether the kind is one of the four endpoint events.
func (k EventKind) IsEndpoint() bool {
	switch k {
	case EvEndpointAdded, EvEndpointRemoved, EvEndpointNotReady, EvEndpointReady:
		return true
	}
	return false
}

// MarshalText implements encoding.TextMarshaler.
func (k EventKind) MarshalText() ([]byte, error) {
	if k >= numEventKinds {
		return nil, fmt.Errorf("timeline: unknown event kind %d", uint8(k))
	}
	return []byte(eventKindNames[k]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *EventKind) UnmarshalText(b []byte) error {
	v, err := ParseEventKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// ParseEventKind is the inverse of EventKind.String.
func ParseEventKind(s string) (EventKind, error) {
	for i, n := range eventKindNames {
		if n == s {
			return EventKind(i), nil
		}
	}
	return EvUnknown, fmt.Errorf("timeline: unknown event kind %q", s)
}

// ClientKind says which kind of client sent a request. Each behaves like a
// class of real clients, and each is judged on its own.
type ClientKind uint8

// The client kinds. Their names are part of the saved-timeline format.
const (
	// ClientUnknown: a request recorded without a client kind (timelines of
	// format version 1, or a client of the caller's own).
	ClientUnknown ClientKind = iota
	// ClientGateway behaves like an ingress controller or a service mesh: it
	// follows the Service's endpoints itself (with the propagation delay
	// real gateways have), sends each request straight to a pod over
	// pooled keep-alive connections, and never retries: it knows exactly
	// which pod every request went to.
	ClientGateway
	// ClientService goes through the Service (kube-proxy) with a new
	// connection per request, like a client behind a load balancer.
	ClientService
	// ClientInCluster is the service client run from pods inside the
	// cluster (package incluster), to the Service's cluster address: for
	// clusters whose nodes this machine cannot reach, and rates one machine
	// cannot send. Its results come back through the pods' logs.
	ClientInCluster
	numClientKinds
)

var clientKindNames = [numClientKinds]string{
	ClientUnknown:   "unknown",
	ClientGateway:   "gateway",
	ClientService:   "service",
	ClientInCluster: "in-cluster",
}

// ClientKinds lists the kinds clients can have (ClientUnknown aside).
func ClientKinds() []ClientKind { return []ClientKind{ClientGateway, ClientService, ClientInCluster} }

func (k ClientKind) String() string {
	if k < numClientKinds {
		return clientKindNames[k]
	}
	return fmt.Sprintf("ClientKind(%d)", uint8(k))
}

// MarshalText implements encoding.TextMarshaler.
func (k ClientKind) MarshalText() ([]byte, error) {
	if k >= numClientKinds {
		return nil, fmt.Errorf("timeline: unknown client kind %d", uint8(k))
	}
	return []byte(clientKindNames[k]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *ClientKind) UnmarshalText(b []byte) error {
	v, err := ParseClientKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// ParseClientKind is the inverse of ClientKind.String.
func ParseClientKind(s string) (ClientKind, error) {
	for i, n := range clientKindNames {
		if n == s {
			return ClientKind(i), nil
		}
	}
	return ClientUnknown, fmt.Errorf("timeline: unknown client kind %q: use gateway, service or in-cluster", s)
}

// Via says how a request's pod became known.
type Via uint8

// The ways a request is attributed. Their names are part of the saved format.
const (
	ViaNone    Via = iota // nobody is named: a transport error without routing knowledge
	ViaHeaders            // the response named its pod (X-Pod-Name...)
	ViaRoute              // the client chose the pod itself (the gateway client)
	numVias
)

var viaNames = [numVias]string{ViaNone: "", ViaHeaders: "headers", ViaRoute: "route"}

func (v Via) String() string {
	if v < numVias {
		return viaNames[v]
	}
	return fmt.Sprintf("Via(%d)", uint8(v))
}

// ParseVia is the inverse of Via.String.
func ParseVia(s string) (Via, error) {
	for i, n := range viaNames {
		if n == s {
			return Via(i), nil
		}
	}
	return ViaNone, fmt.Errorf("timeline: unknown attribution %q", s)
}
