package hostroute

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// Protocol marks the routes this package adds (rtm_protocol 82, "proto 82"
// in `ip route`). 82 is not assigned in the kernel's rtnetlink.h nor in
// iproute2's rt_protos, and 0x52 is "R" for rehearse. The mark lets a route
// of ours be told apart from the host's without the record file, and lets a
// deletion match only our route (the kernel compares the protocol when the
// request gives one).
const Protocol = netlink.RouteProtocol(82)

// Netlink is the part of *netlink.Handle this package uses. It is an
// interface so that the overlap checks, the sync diff and the record file
// can be tested with a fake, without root and without touching the host.
type Netlink interface {
	RouteListFiltered(family int, filter *netlink.Route, filterMask uint64) ([]netlink.Route, error)
	RouteReplace(route *netlink.Route) error
	RouteDel(route *netlink.Route) error
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
	LinkList() ([]netlink.Link, error)
}

var _ Netlink = (*netlink.Handle)(nil)

// These equal the Linux values; netlink defines them only on Linux, and the
// package must still compile elsewhere (Available then says why it cannot
// work).
const (
	familyV4  = 2   // AF_INET
	tableMain = 254 // RT_TABLE_MAIN
)

// defaultNetlink is a handle on the host's network namespace. The zero
// Handle opens a socket per request, like netlink's package functions.
func defaultNetlink() Netlink { return &netlink.Handle{} }

// dumpRetries bounds retries of a dump that the kernel interrupted because
// the table changed meanwhile: the result is then incomplete, and an
// incomplete list would make the overlap check miss a conflict.
const dumpRetries = 5

// hostRoutes lists the IPv4 routes of every routing table.
func hostRoutes(nl Netlink) ([]netlink.Route, error) {
	var err error
	for range dumpRetries {
		var rs []netlink.Route
		// Table 0 with the table filter means every table, not only main:
		// VPNs and policy routing often keep their ranges elsewhere.
		rs, err = nl.RouteListFiltered(familyV4, &netlink.Route{Table: 0}, netlink.RT_FILTER_TABLE)
		if err == nil {
			return rs, nil
		}
		if !errors.Is(err, errDumpInterrupted) {
			break
		}
	}
	return nil, fmt.Errorf("hostroute: listing the host's routes: %w", err)
}

// hostAddrs lists the IPv4 addresses of every link.
func hostAddrs(nl Netlink) ([]netlink.Addr, error) {
	var err error
	for range dumpRetries {
		var as []netlink.Addr
		as, err = nl.AddrList(nil, familyV4)
		if err == nil {
			return as, nil
		}
		if !errors.Is(err, errDumpInterrupted) {
			break
		}
	}
	return nil, fmt.Errorf("hostroute: listing the host's addresses: %w", err)
}

// linkNames maps link indexes to names, for messages only: a failure leaves
// it empty and messages fall back to the index.
func linkNames(nl Netlink) map[int]string {
	names := map[int]string{}
	links, err := nl.LinkList()
	if err != nil {
		return names
	}
	for _, l := range links {
		if a := l.Attrs(); a != nil {
			names[a.Index] = a.Name
		}
	}
	return names
}

// describeRoute renders a host route the way `ip route` would, enough to
// find it on the host.
func describeRoute(r netlink.Route, names map[int]string) string {
	s := "default"
	if r.Dst != nil {
		s = r.Dst.String()
	}
	switch r.Type {
	case 2: // RTN_LOCAL
		s = "local " + s
	case 3: // RTN_BROADCAST
		s = "broadcast " + s
	case 6: // RTN_BLACKHOLE
		s = "blackhole " + s
	case 7: // RTN_UNREACHABLE
		s = "unreachable " + s
	case 8: // RTN_PROHIBIT
		s = "prohibit " + s
	}
	if r.Gw != nil {
		s += " via " + r.Gw.String()
	}
	if r.LinkIndex > 0 {
		if n, ok := names[r.LinkIndex]; ok {
			s += " dev " + n
		} else {
			s += fmt.Sprintf(" dev if%d", r.LinkIndex)
		}
	}
	s += fmt.Sprintf(" proto %d", int(r.Protocol))
	if r.Table != tableMain && r.Table != 0 {
		s += fmt.Sprintf(" table %d", r.Table)
	}
	return s
}

// ourRoute is the route installed for one node: main table, our protocol,
// unicast, universe scope (netlink's defaults for a new route).
func ourRoute(cidr *net.IPNet, via net.IP) *netlink.Route {
	return &netlink.Route{Dst: cidr, Gw: via, Protocol: Protocol, Table: tableMain}
}

// delRoute matches our route for a CIDR whatever its gateway: after a failed
// replace, the installed gateway may differ from the recorded one, and the
// route must still go. Giving the protocol keeps the kernel from deleting a
// route of the same destination that is not ours.
func delRoute(cidr *net.IPNet) *netlink.Route {
	return &netlink.Route{Dst: cidr, Protocol: Protocol, Table: tableMain}
}
