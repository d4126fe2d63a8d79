package hostroute

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testManager(t *testing.T, f *fakeNL, dir, cluster string) *Manager {
	t.Helper()
	m := New(cluster, WithDir(dir), WithNetlink(f))
	m.o.now = func() time.Time { return t0 }
	return m
}

func nr(node, cidr, via string) NodeRoute {
	return NodeRoute{Node: node, PodCIDR: dst(cidr), Via: net.ParseIP(via)}
}

// kindNodes is a three-node kind cluster on the kind network.
func kindNodes() []NodeRoute {
	return []NodeRoute{
		nr("c-control-plane", "10.244.0.0/24", "172.18.0.2"),
		nr("c-worker", "10.244.1.0/24", "172.18.0.3"),
		nr("c-worker2", "10.244.2.0/24", "172.18.0.4"),
	}
}

func readRec(t *testing.T, dir, cluster string) record {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, cluster+".json"))
	require.NoError(t, err)
	var rec record
	require.NoError(t, json.Unmarshal(b, &rec))
	return rec
}

func recCIDRs(rec record) []string {
	var out []string
	for _, r := range rec.Routes {
		out = append(out, r.CIDR+" "+r.Node+" "+r.Via)
	}
	return out
}

func TestSyncAddsRecordsAndIsIdempotent(t *testing.T) {
	f, dir := newFakeHost(), t.TempDir()
	m := testManager(t, f, dir, "c")
	require.NoError(t, m.Sync(context.Background(), kindNodes()))

	assert.Equal(t, []string{
		"10.244.0.0/24 via 172.18.0.2", "10.244.1.0/24 via 172.18.0.3", "10.244.2.0/24 via 172.18.0.4",
	}, f.ours())
	for _, r := range f.routes {
		if r.Protocol == Protocol {
			assert.Equal(t, tableMain, r.Table, "our routes live in the main table")
		}
	}
	assert.Len(t, f.takeCalls(), 3)

	rec := readRec(t, dir, "c")
	assert.Equal(t, "c", rec.Cluster)
	assert.Equal(t, 82, rec.Protocol)
	assert.Equal(t, []string{
		"10.244.0.0/24 c-control-plane 172.18.0.2", "10.244.1.0/24 c-worker 172.18.0.3", "10.244.2.0/24 c-worker2 172.18.0.4",
	}, recCIDRs(rec))
	assert.True(t, rec.Routes[0].AddedAt.Equal(t0))
	raw, err := os.ReadFile(filepath.Join(dir, "c.json"))
	require.NoError(t, err)
	for _, key := range []string{`"cluster"`, `"routes"`, `"node"`, `"cidr"`, `"via"`, `"added_at"`} {
		assert.Contains(t, string(raw), key)
	}

	got := m.Routes()
	require.Len(t, got, 3)
	assert.Equal(t, "c-control-plane", got[0].Node)
	assert.Equal(t, "10.244.0.0/24", got[0].PodCIDR.String())
	assert.Equal(t, "172.18.0.2", got[0].Via.String())

	// Again, from a fresh manager as another process would: nothing to do,
	// and our own routes are no conflict.
	m2 := testManager(t, f, dir, "c")
	require.NoError(t, m2.Sync(context.Background(), kindNodes()))
	assert.Empty(t, f.takeCalls())
	assert.Len(t, m2.Routes(), 3)

	// Only the record file stays in the directory: no temporary files.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{".lock", "c.json"}, names)
}

func TestSyncJournalsBeforeAddAndAfterDelete(t *testing.T) {
	f, dir := newFakeHost(), t.TempDir()
	m := testManager(t, f, dir, "c")
	f.onReplace = func(r *netlink.Route) {
		rec := readRec(t, dir, "c")
		assert.Contains(t, strings.Join(recCIDRs(rec), ","), r.Dst.String()+" ", "record must hold %s before it is added", r.Dst)
	}
	require.NoError(t, m.Sync(context.Background(), kindNodes()))

	f.onDel = func(r *netlink.Route) {
		rec := readRec(t, dir, "c")
		assert.Contains(t, strings.Join(recCIDRs(rec), ","), r.Dst.String()+" ", "record must hold %s until it is deleted", r.Dst)
	}
	require.NoError(t, m.Sync(context.Background(), kindNodes()[:2]))
	assert.Equal(t, []string{"del 10.244.2.0/24 proto 82"}, f.takeCalls()[3:])
	assert.Equal(t, []string{"10.244.0.0/24 c-control-plane 172.18.0.2", "10.244.1.0/24 c-worker 172.18.0.3"}, recCIDRs(readRec(t, dir, "c")))
}

func TestSyncReplacesChangedAndDeletesUnwanted(t *testing.T) {
	f, dir := newFakeHost(), t.TempDir()
	m := testManager(t, f, dir, "c")
	require.NoError(t, m.Sync(context.Background(), kindNodes()))
	f.takeCalls()

	// c-worker was recreated with another address, c-worker2 is gone, a
	// surge node joined, and the control plane's CIDR is now on a renamed
	// node with the same address (nothing to change on the host).
	want := []NodeRoute{
		nr("c-cp-renamed", "10.244.0.0/24", "172.18.0.2"),
		nr("c-worker", "10.244.1.0/24", "172.18.0.7"),
		nr("c-worker3", "10.244.3.0/24", "172.18.0.8"),
	}
	require.NoError(t, m.Sync(context.Background(), want))
	assert.Equal(t, []string{
		"replace 10.244.1.0/24 via 172.18.0.7 proto 82",
		"replace 10.244.3.0/24 via 172.18.0.8 proto 82",
		"del 10.244.2.0/24 proto 82",
	}, f.takeCalls())
	assert.ElementsMatch(t, []string{
		"10.244.0.0/24 via 172.18.0.2", "10.244.1.0/24 via 172.18.0.7", "10.244.3.0/24 via 172.18.0.8",
	}, f.ours())
	assert.Equal(t, []string{
		"10.244.0.0/24 c-cp-renamed 172.18.0.2", "10.244.1.0/24 c-worker 172.18.0.7", "10.244.3.0/24 c-worker3 172.18.0.8",
	}, recCIDRs(readRec(t, dir, "c")))

	// A recorded route that vanished from the host (a reboot) is added again.
	f.routes = f.routes[:len(f.routes)-1]
	require.NoError(t, m.Sync(context.Background(), want))
	assert.Len(t, f.takeCalls(), 1)
	assert.Len(t, f.ours(), 3)

	// Syncing nothing removes every route and the file.
	require.NoError(t, m.Sync(context.Background(), nil))
	assert.Empty(t, f.ours())
	assert.NoFileExists(t, filepath.Join(dir, "c.json"))
	assert.Empty(t, m.Routes())
}

func TestSyncRefusesOverlapWithTheHost(t *testing.T) {
	cases := []struct {
		name     string
		setup    func(f *fakeNL)
		cidr     string
		mentions []string
	}{
		{"LAN address", nil, "192.168.0.0/16", []string{"192.168.1.10/24 on eth0"}},
		{"docker bridge", nil, "172.17.5.0/24", []string{"172.17.0.1/16 on docker0"}},
		{"VPN route in main", func(f *fakeNL) {
			i := f.addLink("tun0")
			f.routes = append(f.routes, netlink.Route{Dst: dst("10.0.0.0/8"), LinkIndex: i, Protocol: 4, Table: tableMain})
		}, "10.244.1.0/24", []string{"route 10.0.0.0/8 dev tun0 proto 4"}},
		{"VPN route in another table", func(f *fakeNL) {
			i := f.addLink("tailscale0")
			f.routes = append(f.routes, netlink.Route{Dst: dst("10.240.0.0/12"), LinkIndex: i, Protocol: 3, Table: 52})
		}, "10.244.1.0/24", []string{"10.240.0.0/12 dev tailscale0 proto 3 table 52"}},
		{"point-to-point peer", func(f *fakeNL) {
			i := f.addLink("ppp0")
			f.addrs = append(f.addrs, netlink.Addr{IPNet: mustNet("10.64.0.1/32"), Peer: mustNet("10.244.1.1/32"), LinkIndex: i})
		}, "10.244.1.0/24", []string{"peer 10.244.1.1/32 on ppp0"}},
		{"blackhole", func(f *fakeNL) {
			f.routes = append(f.routes, netlink.Route{Dst: dst("10.244.0.0/16"), Protocol: 4, Table: tableMain, Type: 6})
		}, "10.244.1.0/24", []string{"blackhole 10.244.0.0/16"}},
		{"a route inside the CIDR", func(f *fakeNL) {
			f.routes = append(f.routes, netlink.Route{Dst: dst("10.244.1.128/25"), Gw: net.ParseIP("192.168.1.5"), LinkIndex: 2, Protocol: 4, Table: tableMain})
		}, "10.244.0.0/16", []string{"10.244.1.128/25 via 192.168.1.5 dev eth0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, dir := newFakeHost(), t.TempDir()
			if c.setup != nil {
				c.setup(f)
			}
			m := testManager(t, f, dir, "c")
			err := m.Sync(context.Background(), []NodeRoute{nr("c-worker", c.cidr, "172.18.0.3")})
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrConflict)
			msg := err.Error()
			assert.Contains(t, msg, "pod CIDR "+c.cidr+" of node c-worker")
			for _, s := range c.mentions {
				assert.Contains(t, msg, s)
			}
			assert.Contains(t, msg, "give the cluster a pod subnet the host does not use")
			assert.Empty(t, f.takeCalls(), "nothing changed on the host")
			assert.NoFileExists(t, filepath.Join(dir, "c.json"))
		})
	}
}

func TestOneRefusalChangesNothing(t *testing.T) {
	f, dir := newFakeHost(), t.TempDir()
	m := testManager(t, f, dir, "c")
	want := append(kindNodes(), nr("c-worker9", "172.17.9.0/24", "172.18.0.9"))
	require.ErrorIs(t, m.Sync(context.Background(), want), ErrConflict)
	assert.Empty(t, f.takeCalls())
	assert.Empty(t, m.Routes())
}

func TestDefaultRoutesAreNoConflict(t *testing.T) {
	f, dir := newFakeHost(), t.TempDir()
	// A VPN's default route in its own table (wg-quick), and one written
	// as 0.0.0.0/0.
	f.routes = append(f.routes,
		netlink.Route{Dst: dst("0.0.0.0/0"), LinkIndex: 2, Protocol: 3, Table: 51820},
		netlink.Route{Dst: dst("0.0.0.0/0"), LinkIndex: 2, Protocol: 4, Table: tableMain, Priority: 500},
	)
	m := testManager(t, f, dir, "c")
	require.NoError(t, m.Sync(context.Background(), kindNodes()))
	assert.Len(t, f.ours(), 3)
}

func TestAnotherClustersRoutesAreConflicts(t *testing.T) {
	f, dir := newFakeHost(), t.TempDir()
	a := testManager(t, f, dir, "rehearse-a")
	require.NoError(t, a.Sync(context.Background(), []NodeRoute{nr("a-worker", "10.244.1.0/24", "172.18.0.3")}))

	b := testManager(t, f, dir, "rehearse-b")
	for _, cidr := range []string{"10.244.1.0/24", "10.244.0.0/16"} {
		err := b.Sync(context.Background(), []NodeRoute{nr("b-worker", cidr, "172.18.0.5")})
		require.ErrorIs(t, err, ErrConflict, cidr)
		msg := err.Error()
		assert.Contains(t, msg, "pod CIDR "+cidr+" of node b-worker")
		assert.Contains(t, msg, `10.244.1.0/24 via 172.18.0.3, the host route of node a-worker of cluster "rehearse-a" (installed)`)
		assert.Contains(t, msg, "10.244.0.0/16")
		assert.Contains(t, msg, "only one cluster at a time can have host routes")
		assert.Contains(t, msg, "rehearse restore")
		assert.NotContains(t, msg, "no record claims", "the route is claimed by a's record")
	}
	assert.Equal(t, []string{"10.244.1.0/24 via 172.18.0.3"}, f.ours())

	// A record whose routes are gone (a reboot) still blocks until cleaned
	// up: its Cleanup could otherwise delete b's route later.
	f.routes = f.routes[:len(f.routes)-1]
	err := b.Sync(context.Background(), []NodeRoute{nr("b-worker", "10.244.1.0/24", "172.18.0.5")})
	require.ErrorIs(t, err, ErrConflict)
	assert.Contains(t, err.Error(), "recorded but not installed now")

	require.NoError(t, Cleanup("rehearse-a", WithDir(dir), WithNetlink(f)))
	require.NoError(t, b.Sync(context.Background(), []NodeRoute{nr("b-worker", "10.244.1.0/24", "172.18.0.5")}))
	assert.Equal(t, []string{"10.244.1.0/24 via 172.18.0.5"}, f.ours())
}

func TestUnrecordedRouteOfOursIsAConflict(t *testing.T) {
	f, dir := newFakeHost(), t.TempDir()
	f.routes = append(f.routes, netlink.Route{Dst: dst("10.244.1.0/24"), Gw: net.ParseIP("172.18.0.9"), Protocol: Protocol, Table: tableMain})
	m := testManager(t, f, dir, "c")
	err := m.Sync(context.Background(), kindNodes())
	require.ErrorIs(t, err, ErrConflict)
	assert.Contains(t, err.Error(), "10.244.1.0/24 via 172.18.0.9 proto 82")
	assert.Contains(t, err.Error(), "ip route del <cidr> proto 82")
	assert.Empty(t, f.takeCalls())
}

func TestViaMustBeOnAConnectedNetwork(t *testing.T) {
	cases := []struct{ via, mentions string }{
		{"10.9.0.3", "not on a network this host is attached to"},
		{"172.18.0.1", "is an address of this host (on br-kind)"},
		{"127.0.0.2", "not on a network this host is attached to"},
	}
	for _, c := range cases {
		f, dir := newFakeHost(), t.TempDir()
		m := testManager(t, f, dir, "c")
		err := m.Sync(context.Background(), []NodeRoute{nr("c-worker", "10.244.1.0/24", c.via)})
		require.ErrorIs(t, err, ErrConflict, c.via)
		assert.Contains(t, err.Error(), "gateway "+c.via+" of node c-worker")
		assert.Contains(t, err.Error(), c.mentions)
		assert.Empty(t, f.takeCalls())
	}
	f := newFakeHost()
	err := testManager(t, f, t.TempDir(), "c").Sync(context.Background(), []NodeRoute{nr("c-worker", "10.244.1.0/24", "10.9.0.3")})
	assert.Contains(t, err.Error(), "Docker Desktop")
	assert.Contains(t, err.Error(), "in-container client")
	assert.Contains(t, err.Error(), "172.18.0.0/16 on br-kind")
}

func TestWantedRoutesAreChecked(t *testing.T) {
	cases := []struct {
		name     string
		want     []NodeRoute
		mentions string
	}{
		{"IPv6", []NodeRoute{nr("n", "fd00:10:244::/64", "172.18.0.3")}, "IPv4 only"},
		{"no via", []NodeRoute{{Node: "n", PodCIDR: dst("10.244.1.0/24")}}, "no IPv4 address"},
		{"no CIDR", []NodeRoute{{Node: "n", Via: net.ParseIP("172.18.0.3")}}, "no pod CIDR"},
		{"default", []NodeRoute{nr("n", "0.0.0.0/0", "172.18.0.3")}, "default route"},
		{"twice", []NodeRoute{nr("n", "10.244.1.0/24", "172.18.0.3"), nr("n", "10.244.2.0/24", "172.18.0.3")}, "given twice"},
		{"overlapping nodes", []NodeRoute{nr("a", "10.244.0.0/16", "172.18.0.3"), nr("b", "10.244.2.0/24", "172.18.0.4")}, "overlaps pod CIDR 10.244.2.0/24 of node b"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeHost()
			err := testManager(t, f, t.TempDir(), "c").Sync(context.Background(), c.want)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.mentions)
			assert.Empty(t, f.takeCalls())
		})
	}

	// Host bits are cleared and 16-byte forms accepted.
	f := newFakeHost()
	m := testManager(t, f, t.TempDir(), "c")
	require.NoError(t, m.Sync(context.Background(), []NodeRoute{{
		Node:    "n",
		PodCIDR: &net.IPNet{IP: net.ParseIP("10.244.1.7"), Mask: net.CIDRMask(120, 128)},
		Via:     net.ParseIP("172.18.0.3"),
	}}))
	assert.Equal(t, []string{"10.244.1.0/24 via 172.18.0.3"}, f.ours())
}

func TestRemoveAndCleanup(t *testing.T) {
	f, dir := newFakeHost(), t.TempDir()
	m := testManager(t, f, dir, "c")
	require.NoError(t, m.Sync(context.Background(), kindNodes()))
	other := testManager(t, f, dir, "other")
	require.NoError(t, other.Sync(context.Background(), []NodeRoute{nr("o", "10.250.0.0/24", "172.18.0.9")}))

	clusters, err := Recorded(WithDir(dir))
	require.NoError(t, err)
	assert.Equal(t, []string{"c", "other"}, clusters)

	// One route already gone, one that cannot be deleted now.
	f.routes = f.routes[:len(f.routes)-2] // other's route and c's 10.244.2.0/24
	f.routes = append(f.routes, netlink.Route{Dst: dst("10.250.0.0/24"), Gw: net.ParseIP("172.18.0.9"), Protocol: Protocol, Table: tableMain})
	f.delErr["10.244.1.0/24"] = syscall.EPERM
	err = m.Remove(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ip route del 10.244.1.0/24 proto 82 (node c-worker)")
	assert.Contains(t, err.Error(), "CAP_NET_ADMIN")
	assert.Equal(t, []string{"10.244.1.0/24 c-worker 172.18.0.3"}, recCIDRs(readRec(t, dir, "c")), "what could not be deleted stays recorded")
	require.Len(t, m.Routes(), 1)

	// Another process, from the file alone.
	delete(f.delErr, "10.244.1.0/24")
	require.NoError(t, Cleanup("c", WithDir(dir), WithNetlink(f)))
	assert.NoFileExists(t, filepath.Join(dir, "c.json"))
	assert.Equal(t, []string{"10.250.0.0/24 via 172.18.0.9"}, f.ours(), "the other cluster's route is untouched")

	clusters, err = Recorded(WithDir(dir))
	require.NoError(t, err)
	assert.Equal(t, []string{"other"}, clusters)

	// Nothing recorded: nothing to do.
	require.NoError(t, Cleanup("c", WithDir(dir), WithNetlink(f)))
	require.NoError(t, other.Remove(context.Background()))
	assert.Empty(t, f.ours())
	clusters, err = Recorded(WithDir(dir))
	require.NoError(t, err)
	assert.Empty(t, clusters)
}

func TestRemoveOnlyDeletesOurProtocol(t *testing.T) {
	f, dir := newFakeHost(), t.TempDir()
	m := testManager(t, f, dir, "c")
	require.NoError(t, m.Sync(context.Background(), kindNodes()[:1]))
	// Someone replaced our route with their own: it is not ours to delete.
	f.routes[len(f.routes)-1].Protocol = 4
	require.NoError(t, m.Remove(context.Background()))
	assert.Len(t, f.routes, len(newFakeHost().routes)+1)
}

func TestFailedAddLeavesNoRecord(t *testing.T) {
	f, dir := newFakeHost(), t.TempDir()
	m := testManager(t, f, dir, "c")
	f.replaceErr["10.244.2.0/24"] = syscall.ENETUNREACH
	err := m.Sync(context.Background(), kindNodes())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ip route replace 10.244.2.0/24 via 172.18.0.4 proto 82 (node c-worker2)")
	assert.Contains(t, err.Error(), "not reachable")
	assert.Equal(t, []string{"10.244.0.0/24 c-control-plane 172.18.0.2", "10.244.1.0/24 c-worker 172.18.0.3"}, recCIDRs(readRec(t, dir, "c")))
	assert.Len(t, m.Routes(), 2)

	// A failed replace of an installed route keeps the old entry: the old
	// route is still there.
	f.replaceErr["10.244.1.0/24"] = syscall.ENETUNREACH
	require.Error(t, m.Sync(context.Background(), []NodeRoute{nr("c-worker", "10.244.1.0/24", "172.18.0.8")}))
	assert.Equal(t, []string{"10.244.1.0/24 c-worker 172.18.0.3"}, recCIDRs(readRec(t, dir, "c")))
	assert.Equal(t, []string{"10.244.1.0/24 via 172.18.0.3"}, f.ours())
}

func TestInterruptedDumpsAreRetried(t *testing.T) {
	f, dir := newFakeHost(), t.TempDir()
	f.interrupts = 2
	require.NoError(t, testManager(t, f, dir, "c").Sync(context.Background(), kindNodes()))
	assert.Len(t, f.ours(), 3)

	f.interrupts = dumpRetries
	err := testManager(t, f, dir, "c").Sync(context.Background(), kindNodes())
	require.Error(t, err)
	assert.ErrorIs(t, err, errDumpInterrupted)
}

func TestCorruptRecords(t *testing.T) {
	f, dir := newFakeHost(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "c.json"), []byte("{not json"), 0o644))
	err := testManager(t, f, dir, "c").Sync(context.Background(), kindNodes())
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(dir, "c.json"))
	assert.Contains(t, err.Error(), "ip route show proto 82")
	assert.Error(t, Cleanup("c", WithDir(dir), WithNetlink(f)))

	// Another cluster's unreadable record does not block, but its installed
	// routes still do, through their protocol.
	require.NoError(t, os.Rename(filepath.Join(dir, "c.json"), filepath.Join(dir, "old.json")))
	f.routes = append(f.routes, netlink.Route{Dst: dst("10.244.1.0/24"), Gw: net.ParseIP("172.18.0.9"), Protocol: Protocol, Table: tableMain})
	err = testManager(t, f, dir, "c").Sync(context.Background(), kindNodes())
	require.ErrorIs(t, err, ErrConflict)
	assert.Contains(t, err.Error(), "no record claims")
	require.NoError(t, testManager(t, f, dir, "c").Sync(context.Background(), []NodeRoute{nr("n", "10.250.0.0/24", "172.18.0.3")}))
}

func TestRecordedIgnoresOtherFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.json", ".a.123.tmp", "notes.txt", ".lock"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), nil, 0o644))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, "d.json"), 0o755))
	got, err := Recorded(WithDir(dir))
	require.NoError(t, err)
	assert.Equal(t, []string{"a"}, got)

	got, err = Recorded(WithDir(filepath.Join(dir, "missing")))
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestClusterNamesMustBeFileNames(t *testing.T) {
	f, dir := newFakeHost(), t.TempDir()
	for _, name := range []string{"", "../x", "a/b", ".hidden"} {
		assert.Error(t, testManager(t, f, dir, name).Sync(context.Background(), nil), name)
		assert.Error(t, Cleanup(name, WithDir(dir), WithNetlink(f)), name)
	}
}

func TestContext(t *testing.T) {
	f, dir := newFakeHost(), t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := testManager(t, f, dir, "c").Sync(ctx, kindNodes())
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, f.takeCalls())
	assert.NoFileExists(t, filepath.Join(dir, "c.json"))

	// Another process holding the directory makes Sync wait, until ctx ends.
	unlock, err := lockDir(context.Background(), dir)
	require.NoError(t, err)
	defer unlock()
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = testManager(t, f, dir, "c").Sync(ctx, kindNodes())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "lock")
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("REHEARSE_CACHE_DIR", "/var/cache/r")
	assert.Equal(t, "/var/cache/r/hostroutes", DefaultDir())
	assert.Equal(t, "/var/cache/r/hostroutes", New("c").o.dir)
	if runtime.GOOS != "linux" {
		return // os.UserCacheDir follows XDG on Linux only
	}
	t.Setenv("REHEARSE_CACHE_DIR", "")
	t.Setenv("XDG_CACHE_HOME", "/home/u/.cache")
	assert.Equal(t, "/home/u/.cache/rehearse/hostroutes", DefaultDir())
}

func TestAvailable(t *testing.T) {
	capsOf := func(v uint64, err error) func() (uint64, error) {
		return func() (uint64, error) { return v, err }
	}
	all := uint64(1)<<41 - 1
	f := newFakeHost()

	err := available("darwin", capsOf(all, nil), 0, f)
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), "not Linux (darwin; Docker Desktop")

	err = available("linux", capsOf(0, nil), 1000, f)
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), "not root: run as root")
	assert.Contains(t, err.Error(), "in-container client")

	err = available("linux", capsOf(0, errors.New("no /proc")), 1000, f)
	assert.Contains(t, err.Error(), "not root: run as root, or use the in-container client")

	err = available("linux", capsOf(all&^(1<<capNetAdmin), nil), 0, f)
	assert.Contains(t, err.Error(), "without CAP_NET_ADMIN")

	// A non-root process granted CAP_NET_ADMIN is enough.
	assert.NoError(t, available("linux", capsOf(1<<capNetAdmin, nil), 1000, f))
	assert.NoError(t, available("linux", capsOf(0, errors.New("no /proc")), 0, f))

	f.listErr = syscall.EPROTONOSUPPORT
	err = available("linux", capsOf(all, nil), 0, f)
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), "netlink does not answer")
}

func TestEffectiveCaps(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	// Only that it parses: root in a container may lack CAP_NET_ADMIN.
	_, err := effectiveCaps()
	require.NoError(t, err)
}

func TestRecordWriteFailureStopsAdding(t *testing.T) {
	f, parent := newFakeHost(), t.TempDir()
	dir := filepath.Join(parent, "hostroutes")
	m := testManager(t, f, dir, "c")
	require.NoError(t, m.Sync(context.Background(), kindNodes()))
	f.takeCalls()

	// After the first replace the record directory becomes unusable.
	f.onReplace = func(*netlink.Route) {
		f.onReplace = nil
		require.NoError(t, os.RemoveAll(dir))
		require.NoError(t, os.WriteFile(dir, nil, 0o644))
	}
	want := []NodeRoute{
		nr("c-control-plane", "10.244.0.0/24", "172.18.0.12"),
		nr("c-worker", "10.244.1.0/24", "172.18.0.13"),
		nr("c-worker2", "10.244.2.0/24", "172.18.0.4"),
	}
	err := m.Sync(context.Background(), want)
	require.Error(t, err)
	assert.Equal(t, []string{"replace 10.244.0.0/24 via 172.18.0.12 proto 82"}, f.takeCalls(),
		"no route is added without its journal entry, and wanted routes not reached are not taken for stale ones")
	assert.ElementsMatch(t, []string{
		"10.244.0.0/24 via 172.18.0.12", "10.244.1.0/24 via 172.18.0.3", "10.244.2.0/24 via 172.18.0.4",
	}, f.ours())
}
