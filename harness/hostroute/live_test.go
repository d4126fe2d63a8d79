//go:build linux

package hostroute

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
)

// TestLiveHostRoute changes the real host, so it runs only when asked
// (REHEARSE_HOSTROUTE_LIVE=1) and as root. It uses documentation ranges
// (RFC 5737) that no real network uses: a dummy link (an empty bridge where
// the kernel has no dummy driver) with 198.51.100.1/24 stands for the kind
// network, and 203.0.113.0/24 via 198.51.100.2 for a node's pod CIDR. The link and the route are deleted even if the test
// fails.
func TestLiveHostRoute(t *testing.T) {
	if os.Getenv("REHEARSE_HOSTROUTE_LIVE") != "1" {
		t.Skip("changes the host's routes: set REHEARSE_HOSTROUTE_LIVE=1 and run as root")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	require.NoError(t, Available())

	podCIDR, kindNet, via := dst("203.0.113.0/24"), mustNet("198.51.100.1/24"), net.ParseIP("198.51.100.2").To4()
	routes, err := hostRoutes(defaultNetlink())
	require.NoError(t, err)
	for _, r := range routes {
		d := ipv4Net(r.Dst)
		if d == nil {
			continue
		}
		if ones, _ := d.Mask.Size(); ones > 0 && (overlaps(d, podCIDR) || overlaps(d, kindNet)) {
			t.Skipf("the host already routes %s; not touching it", d)
		}
	}

	name := fmt.Sprintf("rhtest%d", os.Getpid()%100000)
	var link netlink.Link = &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := netlink.LinkAdd(link); errors.Is(err, syscall.EOPNOTSUPP) {
		// Kernels built without the dummy driver have bridges (Docker needs
		// them); an empty bridge carries an address and routes just as well.
		link = &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
		require.NoError(t, netlink.LinkAdd(link))
	} else {
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		// Deleting the link takes its address and every route through it;
		// the explicit delete covers a route left on another link.
		if l, err := netlink.LinkByName(name); err == nil {
			assert.NoError(t, netlink.LinkDel(l))
		}
		_ = netlink.RouteDel(delRoute(podCIDR))
	})
	require.NoError(t, netlink.AddrAdd(link, &netlink.Addr{IPNet: kindNet}))
	require.NoError(t, netlink.LinkSetUp(link))

	dir := t.TempDir()
	m := New("live", WithDir(dir))
	t.Cleanup(func() { _ = Cleanup("live", WithDir(dir)) })
	require.NoError(t, m.Sync(context.Background(), []NodeRoute{{Node: "live-node", PodCIDR: podCIDR, Via: via}}))

	installed := func() []netlink.Route {
		rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: podCIDR}, netlink.RT_FILTER_DST)
		require.NoError(t, err)
		return rs
	}
	rs := installed()
	require.Len(t, rs, 1)
	assert.Equal(t, Protocol, rs[0].Protocol, "the route carries our protocol")
	assert.True(t, rs[0].Gw.Equal(via))
	assert.Equal(t, tableMain, rs[0].Table)
	byProto, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: Protocol}, netlink.RT_FILTER_PROTOCOL)
	require.NoError(t, err)
	assert.NotEmpty(t, byProto, "found by protocol alone, like `ip route show proto 82`")
	assert.FileExists(t, filepath.Join(dir, "live.json"))

	// Idempotent against the real kernel: our own route is no conflict.
	require.NoError(t, m.Sync(context.Background(), []NodeRoute{{Node: "live-node", PodCIDR: podCIDR, Via: via}}))
	assert.Len(t, installed(), 1)

	require.NoError(t, m.Remove(context.Background()))
	assert.Empty(t, installed())
	assert.NoFileExists(t, filepath.Join(dir, "live.json"))
	assert.Empty(t, m.Routes())
}
