package hostroute

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
)

// normalizeAll checks that every wanted route is IPv4 and complete, returns
// copies with the CIDR reduced to its network address, sorted by CIDR, and
// refuses wanted routes that overlap each other (the kernel would send part
// of one node's pods to another node).
func normalizeAll(want []NodeRoute) ([]NodeRoute, error) {
	var errs []error
	var out []NodeRoute
	nodes := map[string]bool{}
	for _, w := range want {
		n, err := normalize(w)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if nodes[n.Node] {
			errs = append(errs, fmt.Errorf("hostroute: node %q is given twice", n.Node))
			continue
		}
		nodes[n.Node] = true
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PodCIDR.String() < out[j].PodCIDR.String() })
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if overlaps(out[i].PodCIDR, out[j].PodCIDR) {
				errs = append(errs, fmt.Errorf("%w: pod CIDR %s of node %s overlaps pod CIDR %s of node %s; each node needs its own range",
					ErrConflict, out[i].PodCIDR, out[i].Node, out[j].PodCIDR, out[j].Node))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func normalize(w NodeRoute) (NodeRoute, error) {
	if w.Node == "" {
		return NodeRoute{}, fmt.Errorf("hostroute: a route without a node name (pod CIDR %v)", w.PodCIDR)
	}
	if w.PodCIDR == nil {
		return NodeRoute{}, fmt.Errorf("hostroute: node %s has no pod CIDR", w.Node)
	}
	cidr := ipv4Net(w.PodCIDR)
	if cidr == nil {
		return NodeRoute{}, fmt.Errorf("hostroute: pod CIDR %s of node %s is not IPv4; host routes are IPv4 only", w.PodCIDR, w.Node)
	}
	if ones, _ := cidr.Mask.Size(); ones == 0 {
		return NodeRoute{}, fmt.Errorf("%w: pod CIDR %s of node %s would replace the host's default route", ErrConflict, cidr, w.Node)
	}
	via := w.Via.To4()
	if via == nil {
		return NodeRoute{}, fmt.Errorf("hostroute: node %s has no IPv4 address on the kind network (via %v)", w.Node, w.Via)
	}
	return NodeRoute{Node: w.Node, PodCIDR: cidr, Via: via}, nil
}

// ipv4Net returns n as a 4-byte network address and mask, or nil when n is
// not IPv4. Host bits are cleared, as the kernel requires of a route.
func ipv4Net(n *net.IPNet) *net.IPNet {
	if n == nil {
		return nil
	}
	ip := n.IP.To4()
	ones, bits := n.Mask.Size()
	if bits == 128 && ones >= 96 {
		ones, bits = ones-96, 32 // an IPv4 net in its 16-byte form
	}
	if ip == nil || bits != 32 {
		return nil
	}
	mask := net.CIDRMask(ones, 32)
	return &net.IPNet{IP: ip.Mask(mask), Mask: mask}
}

// overlaps reports whether two networks share an address: with prefixes,
// that is when one contains the other's first address.
func overlaps(a, b *net.IPNet) bool {
	return a.Contains(b.IP) || b.Contains(a.IP)
}

// hostState is what the checks look at: the host's routes and addresses, and
// the records of other clusters.
type hostState struct {
	routes []netlink.Route
	addrs  []netlink.Addr
	names  map[int]string
	others []*record
}

func (m *Manager) lookHost() (hostState, error) {
	var st hostState
	var err error
	if st.routes, err = hostRoutes(m.o.nl); err != nil {
		return st, err
	}
	if st.addrs, err = hostAddrs(m.o.nl); err != nil {
		return st, err
	}
	st.names = linkNames(m.o.nl)
	clusters, err := recordedClusters(m.o.dir)
	if err != nil {
		return st, err
	}
	for _, c := range clusters {
		if c == m.cluster {
			continue
		}
		// An unreadable record of another cluster is skipped, not fatal: the
		// routes it describes carry our protocol number, and an installed
		// route of ours that no readable record claims is a conflict below.
		if rec, err := readRecord(m.o.dir, c); err == nil {
			st.others = append(st.others, rec)
		}
	}
	return st, nil
}

// check refuses every wanted route that overlaps something this cluster
// did not add, or whose gateway is not on a directly connected network.
// want is normalized.
func check(cluster string, want []NodeRoute, own *record, st hostState) error {
	var errs []error
	for _, w := range want {
		if err := checkVia(w, st); err != nil {
			errs = append(errs, err)
		}
		var host, others, orphans []string
		for _, a := range st.addrs {
			for _, n := range addrNets(a) {
				if overlaps(n, w.PodCIDR) {
					host = append(host, fmt.Sprintf("the host's address %s on %s", addrString(a, n), linkName(a.LinkIndex, a.Label, st.names)))
				}
			}
		}
		for _, r := range st.routes {
			dst := ipv4Net(r.Dst)
			if dst == nil {
				continue
			}
			if ones, _ := dst.Mask.Size(); ones == 0 {
				continue // a default route overlaps everything; it is no conflict
			}
			if r.Protocol == 2 { // RTPROT_KERNEL
				continue // connected, local and broadcast routes of an address, reported above
			}
			if !overlaps(dst, w.PodCIDR) {
				continue
			}
			if r.Protocol == Protocol && r.Table == tableMain {
				if _, ok := own.get(dst.String()); ok {
					continue // ours: Sync replaces or deletes it
				}
				if claimedBy(st.others, dst.String()) != nil {
					continue // reported with the other cluster's record
				}
				orphans = append(orphans, describeRoute(r, st.names))
				continue
			}
			host = append(host, "the host's route "+describeRoute(r, st.names))
		}
		for _, rec := range st.others {
			for _, rr := range rec.Routes {
				_, n, err := net.ParseCIDR(rr.CIDR)
				if err != nil || !overlaps(n, w.PodCIDR) {
					continue
				}
				state := "installed"
				if !installed(st.routes, rr.CIDR) {
					state = "recorded but not installed now (after a reboot?)"
				}
				others = append(others, fmt.Sprintf("%s via %s, the host route of node %s of cluster %q (%s)", rr.CIDR, rr.Via, rr.Node, rec.Cluster, state))
			}
		}
		if len(host)+len(others)+len(orphans) == 0 {
			continue
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%v: pod CIDR %s of node %s overlaps %s.", ErrConflict, w.PodCIDR, w.Node, strings.Join(append(append(host, others...), orphans...), "; "))
		if len(host) > 0 {
			b.WriteString(" Routing it to the cluster would take that traffic from the host: give the cluster a pod subnet the host does not use (kind: networking.podSubnet in the cluster config), or use the in-container client.")
		}
		if len(others) > 0 {
			fmt.Fprintf(&b, " Kind clusters all use the pod subnet 10.244.0.0/16 unless configured otherwise, so only one cluster at a time can have host routes: delete the other cluster or remove its routes (`rehearse restore`, hostroute.Cleanup), or give cluster %q another pod subnet.", cluster)
		}
		if len(orphans) > 0 {
			fmt.Fprintf(&b, " A route with rehearse's protocol %d that no record claims is left from a run whose record was lost: delete it with `ip route del <cidr> proto %d`.", int(Protocol), int(Protocol))
		}
		errs = append(errs, wrapped{b.String()})
	}
	return errors.Join(errs...)
}

// wrapped is an ErrConflict with a message built around it.
type wrapped struct{ msg string }

func (e wrapped) Error() string        { return e.msg }
func (e wrapped) Is(target error) bool { return target == ErrConflict }

// checkVia refuses a gateway that is not on a network some host address is
// on: the kernel could not reach it, and when the node addresses are not on
// the host at all, Docker runs elsewhere (Docker Desktop's VM, a remote
// daemon) and no route from this host reaches the pods.
func checkVia(w NodeRoute, st hostState) error {
	var nets []string
	for _, a := range st.addrs {
		if a.Scope == 254 { // RT_SCOPE_HOST: loopback, no gateway lives there
			continue
		}
		ip := a.IP.To4()
		if ip == nil {
			continue
		}
		if ip.Equal(w.Via) {
			return fmt.Errorf("%w: gateway %s of node %s is an address of this host (on %s), not a node", ErrConflict, w.Via, w.Node, linkName(a.LinkIndex, a.Label, st.names))
		}
		n := ipv4Net(a.IPNet)
		if n == nil {
			continue
		}
		if n.Contains(w.Via) {
			return nil
		}
		nets = append(nets, fmt.Sprintf("%s on %s", n, linkName(a.LinkIndex, a.Label, st.names)))
	}
	return fmt.Errorf("%w: gateway %s of node %s (for pod CIDR %s) is not on a network this host is attached to (the host's networks: %s). Docker probably runs the nodes in a VM (Docker Desktop) or on another machine, and then pod IPs are not reachable from this host: use the in-container client",
		ErrConflict, w.Via, w.Node, w.PodCIDR, strings.Join(nets, ", "))
}

// addrNets is what an address takes from the address space: its subnet, and
// the peer's for a point-to-point link.
func addrNets(a netlink.Addr) []*net.IPNet {
	var out []*net.IPNet
	if n := ipv4Net(a.IPNet); n != nil {
		out = append(out, n)
	}
	if n := ipv4Net(a.Peer); n != nil {
		out = append(out, n)
	}
	return out
}

func addrString(a netlink.Addr, n *net.IPNet) string {
	if a.IPNet != nil && n.Contains(a.IP) {
		return a.IPNet.String()
	}
	return "peer " + n.String()
}

func linkName(index int, label string, names map[int]string) string {
	if n, ok := names[index]; ok {
		return n
	}
	if label != "" {
		return label
	}
	return fmt.Sprintf("if%d", index)
}

func claimedBy(others []*record, cidr string) *record {
	for _, rec := range others {
		if _, ok := rec.get(cidr); ok {
			return rec
		}
	}
	return nil
}

func installed(routes []netlink.Route, cidr string) bool {
	for _, r := range routes {
		if r.Protocol == Protocol && r.Table == tableMain && r.Dst != nil && r.Dst.String() == cidr {
			return true
		}
	}
	return false
}
