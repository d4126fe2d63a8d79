package priority

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// state is what Raise may change: the threads' nice value, the autogroup's,
// the CPU cgroup.
type state struct {
	nice, group int
	cgroup      string
}

func current(t *testing.T) state {
	t.Helper()
	nice, err := threadNice()
	require.NoError(t, err)
	group, _, err := autogroupNice()
	require.NoError(t, err)
	cg, err := ownCPUCgroup()
	require.NoError(t, err)
	return state{nice: nice, group: group, cgroup: cg.path}
}

func raise(t *testing.T) *Raised {
	t.Helper()
	r, err := Raise()
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EROFS) {
		t.Skipf("not allowed to raise the priority here: %v", err)
	}
	require.NoError(t, err)
	t.Log(r.Detail)
	return r
}

// TestRaiseAndRestore raises the priority wherever this test runs (the root
// CPU cgroup with autogroups on a workstation, a cgroup of its own under a
// CI runner) and checks that Restore puts everything back.
func TestRaiseAndRestore(t *testing.T) {
	was := current(t)
	r := raise(t)
	if was.nice <= Nice {
		return // nothing to raise
	}
	assert.Equal(t, Nice, current(t).nice)
	r.Restore()
	assert.Equal(t, was, current(t))
	r.Restore() // a second time changes nothing
	assert.Equal(t, was, current(t))
}

// TestRaiseFromACgroup puts the test process where a systemd service or a
// CI runner may put it (a CPU cgroup other than the root, where the kernel
// does not apply autogroups) and
// checks that Raise moves it to a heavier cgroup of its own and Restore
// moves it back.
func TestRaiseFromACgroup(t *testing.T) {
	cg, err := ownCPUCgroup()
	require.NoError(t, err)
	if cg.version != 1 || cg.mount == "" || len(cg.controllers) > 2 || os.Geteuid() != 0 {
		t.Skipf("needs root and a cgroup v1 cpu hierarchy of its own; here %+v", cg)
	}
	home := filepath.Join(cg.mount, cg.path)
	job := filepath.Join(cg.mount, "rehearse-priority-test")
	require.NoError(t, os.Mkdir(job, 0o755))
	t.Cleanup(func() {
		require.NoError(t, writeFile(filepath.Join(home, "cgroup.procs"), os.Getpid()))
		require.NoError(t, os.Remove(job))
	})
	require.NoError(t, writeFile(filepath.Join(job, "cgroup.procs"), os.Getpid()))
	was := current(t)
	require.Equal(t, "/rehearse-priority-test", was.cgroup)

	r := raise(t)
	now := current(t)
	assert.Equal(t, "/"+instrumentsCgroup, now.cgroup)
	assert.Equal(t, Nice, now.nice)
	shares, err := os.ReadFile(filepath.Join(cg.mount, instrumentsCgroup, "cpu.shares"))
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(instrumentsShares), strings.TrimSpace(string(shares)))

	r.Restore()
	assert.Equal(t, was, current(t))
	assert.NoDirExists(t, filepath.Join(cg.mount, instrumentsCgroup))
}

func TestParseAutogroup(t *testing.T) {
	n, ok, err := parseAutogroup("/autogroup-8577 nice -3\n")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, -3, n)

	_, ok, err = parseAutogroup("") // the process belongs to no autogroup
	require.NoError(t, err)
	assert.False(t, ok)

	_, _, err = parseAutogroup("/autogroup-1 weight 3")
	assert.ErrorContains(t, err, "unexpected content")
}

func TestFindCPUCgroup(t *testing.T) {
	hybridMounts := `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	for name, c := range map[string]struct {
		procs, mounts string
		want          cpuCgroup
	}{
		"v1 hybrid, root": {
			procs:  "4:memory:/job/7\n2:cpuacct:/\n1:cpu:/\n0::/\n",
			mounts: hybridMounts,
			want:   cpuCgroup{version: 1, path: "/", mount: "/sys/fs/cgroup/cpu", controllers: []string{"cpu"}},
		},
		"v1 co-mounted, in a service": {
			procs:  "3:cpu,cpuacct:/system.slice/ci.service\n0::/system.slice/ci.service\n",
			mounts: "25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
			want:   cpuCgroup{version: 1, path: "/system.slice/ci.service", mount: "/sys/fs/cgroup/cpu,cpuacct", controllers: []string{"cpu", "cpuacct"}},
		},
		"v2": {
			procs:  "0::/user.slice/user-0.slice/session-3.scope\n",
			mounts: "25 24 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n",
			want:   cpuCgroup{version: 2, path: "/user.slice/user-0.slice/session-3.scope", mount: "/sys/fs/cgroup"},
		},
		"v1 in a container: only a part of the hierarchy mounted": {
			procs:  "1:cpu:/docker/abc\n",
			mounts: "32 31 0:29 /docker/abc /sys/fs/cgroup/cpu ro - cgroup cgroup rw,cpu\n",
			want:   cpuCgroup{version: 1, path: "/docker/abc", controllers: []string{"cpu"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := findCPUCgroup(c.procs, c.mounts)
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
	_, err := findCPUCgroup("", "")
	assert.ErrorContains(t, err, "names none")
}

func TestRaiseCgroupLeavesSharedHierarchiesAlone(t *testing.T) {
	for _, cg := range []cpuCgroup{
		{version: 2, path: "/x", mount: "/sys/fs/cgroup"},
		{version: 1, path: "/x", mount: "/sys/fs/cgroup/cpu", controllers: []string{"cpu", "memory"}},
		{version: 1, path: "/x", controllers: []string{"cpu"}},
	} {
		g, err := raiseCgroup(cg)
		require.NoError(t, err)
		assert.Contains(t, g.detail, "left as is")
		assert.Nil(t, g.restore)
	}
}

// TestUndoAGroupLeftAsIs is what a CI runner without autogroups meets:
// the group was not changed, so undoing it must only reset the threads.
func TestUndoAGroupLeftAsIs(t *testing.T) {
	was := current(t)
	assert.NotPanics(t, undo(groupChange{detail: "it belongs to no autogroup"}, was.nice))
	assert.Equal(t, was, current(t))
}
