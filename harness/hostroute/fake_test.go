package hostroute

import (
	"fmt"
	"net"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
)

// fakeNL is a host in memory: routes, addresses and links, with the kernel's
// matching rules for replace and delete as far as this package relies on
// them. It never touches the real host.
type fakeNL struct {
	mu     sync.Mutex
	routes []netlink.Route
	addrs  []netlink.Addr
	links  []netlink.Link

	replaceErr map[string]error // by destination CIDR
	delErr     map[string]error
	listErr    error
	interrupts int // dumps to interrupt before answering

	onReplace func(*netlink.Route) // called before a replace takes effect
	onDel     func(*netlink.Route)

	calls []string
}

func mustNet(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	if ip4 := ip.To4(); ip4 != nil {
		ip = ip4
	}
	return &net.IPNet{IP: ip, Mask: n.Mask}
}

func dst(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// newFakeHost is a laptop: a LAN on eth0 with the default route, Docker's
// default bridge and a kind network, and the kernel's routes for them.
func newFakeHost() *fakeNL {
	f := &fakeNL{replaceErr: map[string]error{}, delErr: map[string]error{}}
	for i, name := range []string{"lo", "eth0", "docker0", "br-kind"} {
		f.links = append(f.links, &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: i + 1, Name: name}})
	}
	f.addAddr(1, "127.0.0.1/8", 254)
	f.addAddr(2, "192.168.1.10/24", 0)
	f.addAddr(3, "172.17.0.1/16", 0)
	f.addAddr(4, "172.18.0.1/16", 0)
	f.routes = append(f.routes,
		netlink.Route{Gw: net.ParseIP("192.168.1.1").To4(), LinkIndex: 2, Protocol: 16, Table: tableMain},
		netlink.Route{Dst: dst("192.168.1.0/24"), LinkIndex: 2, Protocol: 2, Table: tableMain},
		netlink.Route{Dst: dst("172.17.0.0/16"), LinkIndex: 3, Protocol: 2, Table: tableMain},
		netlink.Route{Dst: dst("172.18.0.0/16"), LinkIndex: 4, Protocol: 2, Table: tableMain},
		netlink.Route{Dst: dst("192.168.1.10/32"), LinkIndex: 2, Protocol: 2, Table: 255, Type: 2},
		netlink.Route{Dst: dst("127.0.0.0/8"), LinkIndex: 1, Protocol: 2, Table: 255, Type: 2},
	)
	return f
}

func (f *fakeNL) addAddr(link int, cidr string, scope int) {
	f.addrs = append(f.addrs, netlink.Addr{IPNet: mustNet(cidr), LinkIndex: link, Scope: scope})
}

func (f *fakeNL) addLink(name string) int {
	i := len(f.links) + 1
	f.links = append(f.links, &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: i, Name: name}})
	return i
}

func (f *fakeNL) RouteListFiltered(family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listErr != nil {
		return nil, f.listErr
	}
	if f.interrupts > 0 {
		f.interrupts--
		return nil, fmt.Errorf("dump: %w", errDumpInterrupted)
	}
	var out []netlink.Route
	for _, r := range f.routes {
		// Like netlink: only the main table unless a table filter is given.
		if r.Table != tableMain && (filter == nil || mask&netlink.RT_FILTER_TABLE == 0) {
			continue
		}
		if mask&netlink.RT_FILTER_TABLE != 0 && filter.Table != 0 && r.Table != filter.Table {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

func sameDst(a, b *net.IPNet) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.String() == b.String()
}

// RouteReplace keys routes as the kernel does for our purposes: destination
// and table.
func (f *fakeNL) RouteReplace(r *netlink.Route) error {
	if f.onReplace != nil {
		f.onReplace(r)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("replace %s via %s proto %d", r.Dst, r.Gw, int(r.Protocol)))
	if err := f.replaceErr[r.Dst.String()]; err != nil {
		return err
	}
	nr := *r
	if nr.Table == 0 {
		nr.Table = tableMain
	}
	for i := range f.routes {
		if sameDst(f.routes[i].Dst, nr.Dst) && f.routes[i].Table == nr.Table {
			f.routes[i] = nr
			return nil
		}
	}
	f.routes = append(f.routes, nr)
	return nil
}

// RouteDel matches like fib_table_delete: destination and table, and the
// protocol and gateway only when the request gives them.
func (f *fakeNL) RouteDel(r *netlink.Route) error {
	if f.onDel != nil {
		f.onDel(r)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("del %s proto %d", r.Dst, int(r.Protocol)))
	if err := f.delErr[r.Dst.String()]; err != nil {
		return err
	}
	table := r.Table
	if table == 0 {
		table = tableMain
	}
	for i, x := range f.routes {
		if !sameDst(x.Dst, r.Dst) || x.Table != table {
			continue
		}
		if r.Protocol != 0 && x.Protocol != r.Protocol {
			continue
		}
		if r.Gw != nil && !r.Gw.Equal(x.Gw) {
			continue
		}
		f.routes = append(f.routes[:i], f.routes[i+1:]...)
		return nil
	}
	return syscall.ESRCH
}

func (f *fakeNL) AddrList(link netlink.Link, family int) ([]netlink.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]netlink.Addr(nil), f.addrs...), nil
}

func (f *fakeNL) LinkList() ([]netlink.Link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]netlink.Link(nil), f.links...), nil
}

// ours returns the routes with our protocol, as "cidr via gw".
func (f *fakeNL) ours() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, r := range f.routes {
		if r.Protocol == Protocol {
			out = append(out, fmt.Sprintf("%s via %s", r.Dst, r.Gw))
		}
	}
	return out
}

func (f *fakeNL) takeCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}
