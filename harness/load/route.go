package load

import "strings"

// Endpoint is a pod a routing client can send to.
type Endpoint struct {
	Addr string // "10.244.1.5:8080": where requests go
	Pod  string
	UID  string
	Node string
}

// IP is the address without the port.
func (e Endpoint) IP() string {
	if i := strings.LastIndexByte(e.Addr, ':'); i >= 0 {
		return strings.Trim(e.Addr[:i], "[]")
	}
	return e.Addr
}

// Router chooses, for each request of a routing client (the gateway), the
// pod it goes to, as an ingress controller or a service mesh does: from its
// own view of the Service's ready endpoints, with whatever delay that view
// has. harness/gateway implements it over EndpointSlices.
type Router interface {
	// Pick returns the endpoint of the next request; false when none is
	// routable (the client then answers 503 itself, as a gateway with no
	// healthy upstream does).
	Pick() (Endpoint, bool)
	// Lookup names the endpoint of an address the router routed to at some
	// point, for attributing a result that arrives after a change.
	Lookup(addr string) (Endpoint, bool)
}

// noEndpointHost is the host a routing client's targeter puts in a request
// when the router had nothing to route to; the transport answers such a
// request with 503 without touching the network.
const noEndpointHost = "no-ready-endpoint.invalid"

// NoEndpointStatus is the status line of the 503 a routing client answers
// itself when its router has no ready endpoint.
const NoEndpointStatus = "503 no ready endpoint to route to (answered by the gateway client)"
