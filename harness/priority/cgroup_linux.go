package priority

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// instrumentsCgroup is the CPU cgroup (cgroup v1, at the top of the cpu
// hierarchy) a rehearsal moves its process into when the process does not
// sit at that hierarchy's root, as under a CI runner or a systemd service.
// There autogroups do not apply: the process's CPU share is its cgroup's, which
// weighs the same as the kind nodes' /docker cgroup, and its nice value only
// counts against its own group mates.
const instrumentsCgroup = "rehearse-instruments"

// instrumentsShares is that cgroup's cpu.shares: ten times the default 1024,
// about the weight a nice -10 autogroup gets.
const instrumentsShares = 10 * 1024

// cpuCgroup is where the process sits in the cgroup hierarchy that carries
// the cpu controller.
type cpuCgroup struct {
	version int    // 1 or 2
	path    string // in the hierarchy; "/" is its root
	// mount is where the hierarchy's root is mounted; "" when it is not
	// visible from here (not mounted, or only a part of it, as in a container).
	mount string
	// controllers are the ones the hierarchy carries (cgroup v1).
	controllers []string
}

func ownCPUCgroup() (cpuCgroup, error) {
	procs, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return cpuCgroup{}, fmt.Errorf("find the process's CPU cgroup: %w", err)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return cpuCgroup{}, fmt.Errorf("find the cgroup mounts: %w", err)
	}
	return findCPUCgroup(string(procs), string(mounts))
}

// findCPUCgroup reads /proc/self/cgroup ("4:cpu,cpuacct:/system.slice/x",
// or "0::/x" for cgroup v2) and /proc/self/mountinfo.
func findCPUCgroup(procs, mountinfo string) (cpuCgroup, error) {
	var cg cpuCgroup
	for _, line := range strings.Split(procs, "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if ctrls := strings.Split(f[1], ","); slices.Contains(ctrls, "cpu") {
			cg = cpuCgroup{version: 1, path: f[2], controllers: ctrls}
			break
		}
		if f[0] == "0" && f[1] == "" {
			cg = cpuCgroup{version: 2, path: f[2]}
		}
	}
	if cg.version == 0 {
		return cg, errors.New("find the process's CPU cgroup: /proc/self/cgroup names none")
	}
	for _, line := range strings.Split(mountinfo, "\n") {
		left, right, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		lf, rf := strings.Fields(left), strings.Fields(right)
		if len(lf) < 5 || len(rf) < 3 || lf[3] != "/" {
			continue
		}
		switch {
		case cg.version == 2 && rf[0] == "cgroup2",
			cg.version == 1 && rf[0] == "cgroup" && carries(rf[2], cg.controllers):
			cg.mount = lf[4]
			return cg, nil
		}
	}
	return cg, nil
}

// carries tells whether a cgroup v1 mount's options ("rw,cpu,cpuacct")
// name every one of the controllers.
func carries(options string, controllers []string) bool {
	opts := strings.Split(options, ",")
	for _, c := range controllers {
		if !slices.Contains(opts, c) {
			return false
		}
	}
	return true
}

// raiseCgroup moves the process into instrumentsCgroup, where it is
// possible without side effects: cgroup v1, a hierarchy that carries only
// CPU controllers (moving in a cgroup v2 or a shared hierarchy would also
// move the process's memory and pids accounting out of its supervisor's
// limits). Elsewhere it leaves the group as is and says so.
func raiseCgroup(cg cpuCgroup) (groupChange, error) {
	asIs := func(why string) (groupChange, error) {
		return groupChange{detail: fmt.Sprintf("its CPU cgroup %s left as is (%s)", cg.path, why)}, nil
	}
	switch {
	case cg.version == 2:
		return asIs("cgroup v2: moving it would move its memory accounting too")
	case slices.ContainsFunc(cg.controllers, func(c string) bool { return c != "cpu" && c != "cpuacct" }):
		return asIs("its hierarchy also carries " + strings.Join(cg.controllers, ","))
	case cg.mount == "":
		return asIs("the cpu hierarchy's root is not mounted here")
	}
	dir := filepath.Join(cg.mount, instrumentsCgroup)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return groupChange{}, fmt.Errorf("create the CPU cgroup %s: %w", dir, err)
	}
	if err := writeFile(filepath.Join(dir, "cpu.shares"), instrumentsShares); err != nil {
		_ = os.Remove(dir)
		return groupChange{}, fmt.Errorf("weigh the CPU cgroup %s: %w", dir, err)
	}
	pid := os.Getpid()
	if err := writeFile(filepath.Join(dir, "cgroup.procs"), pid); err != nil {
		_ = os.Remove(dir)
		return groupChange{}, fmt.Errorf("move the process into the CPU cgroup %s: %w", dir, err)
	}
	home := filepath.Join(cg.mount, cg.path)
	return groupChange{
		detail: fmt.Sprintf("moved from CPU cgroup %s to /%s (cpu.shares %d; the default is 1024)", cg.path, instrumentsCgroup, instrumentsShares),
		restore: func() {
			_ = writeFile(filepath.Join(home, "cgroup.procs"), pid)
			_ = os.Remove(dir) // fails while another rehearsal still uses it
		},
	}, nil
}

// writeFile writes one number, as cgroup files want it.
func writeFile(path string, n int) error {
	return os.WriteFile(path, []byte(strconv.Itoa(n)), 0)
}
