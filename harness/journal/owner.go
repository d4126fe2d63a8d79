package journal

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Owner is the process that writes a journal. Host, BootID and PIDNamespace
// together say whether a process of this machine wrote it, and then PID and
// Started say whether that process is still running.
type Owner struct {
	Host   string // host name
	BootID string // /proc/sys/kernel/random/boot_id: changes with every boot
	// PIDNamespace is the owner's pid namespace (/proc/self/ns/pid): two
	// containers may share a kernel, and so a boot id, and even a host name,
	// but a pid means nothing outside its namespace.
	PIDNamespace string
	PID          int
	// Started is when the process started, as /proc tells it, so that a
	// later process given the same pid is not taken for the owner.
	Started time.Time
}

// local is this machine and process as an Owner sees them.
type local struct {
	host, bootID, pidNS string
}

var (
	localOnce sync.Once
	localID   local
)

func thisHost() local {
	localOnce.Do(func() {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "unknown-host"
		}
		localID.host = h
		if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
			localID.bootID = strings.TrimSpace(string(b))
		}
		if ns, err := os.Readlink("/proc/self/ns/pid"); err == nil {
			localID.pidNS = ns
		}
	})
	return localID
}

// HostID identifies this machine in this boot, for Undo.Host: the host name,
// and the boot id where the kernel gives one ("ci-7/5bf4de55-...").
// A change to the machine (a route, a file) is undone only where HostID is
// the same; a reboot gives a new HostID because it loses what a rehearsal
// changed in memory anyway.
func HostID() string {
	h := thisHost()
	if h.bootID == "" {
		return h.host
	}
	return h.host + "/" + h.bootID
}

// self is the calling process as a journal owner. Where /proc cannot give
// the process start time, the time of the call stands in; such an owner is
// then judged by its heartbeat only, since bootID is empty off Linux.
func self(now time.Time) Owner {
	h := thisHost()
	o := Owner{Host: h.host, BootID: h.bootID, PIDNamespace: h.pidNS, PID: os.Getpid(), Started: now}
	if p, err := readProc(o.PID); err == nil {
		o.Started = p.started
	}
	// As it reads back from the journal: UTC, no monotonic reading.
	o.Started = o.Started.Round(0).UTC()
	return o
}

// proc is what /proc/<pid>/stat tells about a process.
type proc struct {
	state   byte
	started time.Time
}

// errNoProc: no process with that pid.
var errNoProc = errors.New("no such process")

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's start time. Go
// cannot ask sysconf without cgo; it is 100 on every Linux architecture the
// harness runs on.
const clockTicks = 100

var (
	bootOnce sync.Once
	bootTime time.Time
	bootErr  error
)

// bootedAt is the btime line of /proc/stat: when the machine booted, to the
// second.
func bootedAt() (time.Time, error) {
	bootOnce.Do(func() {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			bootErr = err
			return
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "btime "); ok {
				s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil {
					bootErr = fmt.Errorf("/proc/stat btime %q: %w", v, err)
					return
				}
				bootTime = time.Unix(s, 0)
				return
			}
		}
		bootErr = errors.New("/proc/stat has no btime line")
	})
	return bootTime, bootErr
}

// readProc reads a process's state and start time from /proc/<pid>/stat.
func readProc(pid int) (proc, error) {
	if pid <= 0 {
		return proc{}, errNoProc
	}
	// ESRCH: the process exited between the open and the read.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return proc{}, errNoProc
	}
	if err != nil {
		return proc{}, err
	}
	// The command name (field 2) is in parentheses and may itself hold
	// spaces and parentheses: the fields that follow start after the last
	// ')'. Then: state (field 3) ... starttime (field 22).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return proc{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return proc{}, fmt.Errorf("/proc/%d/stat: %d fields after the command name, want 20 or more", pid, len(f))
	}
	ticks, err := strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		return proc{}, fmt.Errorf("/proc/%d/stat start time %q: %w", pid, f[19], err)
	}
	boot, err := bootedAt()
	if err != nil {
		return proc{}, err
	}
	started := boot.Add(time.Duration(ticks) * time.Second / clockTicks)
	return proc{state: f[0][0], started: started}, nil
}

// sameStartSlack is how far two readings of one process's start time may
// differ: btime is whole seconds and may be recomputed after a clock step.
// A pid given to a new process within that time of the old one's start is
// the reuse this check cannot see.
const sameStartSlack = 3 * time.Second

// judgement says whether a journal's owner is gone, and why.
type judgement struct {
	gone bool
	why  string
}

// judge applies the liveness rule of the package documentation.
// heartbeat is the owner's last heartbeat (or, lacking one, when the journal
// was created); closed is when the owner closed it (zero if open).
func judge(o Owner, heartbeat, closed, now time.Time, stale time.Duration) judgement {
	if !closed.IsZero() {
		return judgement{true, fmt.Sprintf("closed by its owner (pid %d on host %s) at %s with changes not undone", o.PID, o.Host, closed.Format(time.RFC3339))}
	}
	if j, ok := judgeLocal(o); ok {
		return j
	}
	if heartbeat.IsZero() {
		return judgement{true, fmt.Sprintf("no heartbeat was ever recorded by pid %d on host %s", o.PID, orUnknown(o.Host))}
	}
	age := now.Sub(heartbeat)
	if age > stale {
		return judgement{true, fmt.Sprintf("no heartbeat from host %s (pid %d) for %s", orUnknown(o.Host), o.PID, age.Round(time.Second))}
	}
	return judgement{false, fmt.Sprintf("owner pid %d on host %s sent a heartbeat %s ago", o.PID, orUnknown(o.Host), age.Round(time.Second))}
}

// judgeLocal judges an owner of this machine by the process table; ok is
// false when the owner is not of this machine, or /proc cannot tell.
func judgeLocal(o Owner) (judgement, bool) {
	h := thisHost()
	if o.Host != h.host || o.BootID == "" || o.BootID != h.bootID {
		// A different boot id under the same name may be this machine
		// rebooted, or another machine of the same name (CI runners often
		// are): only the heartbeat can tell them apart safely.
		return judgement{}, false
	}
	if o.PIDNamespace != "" && h.pidNS != "" && o.PIDNamespace != h.pidNS {
		return judgement{}, false
	}
	p, err := readProc(o.PID)
	switch {
	case errors.Is(err, errNoProc):
		return judgement{true, fmt.Sprintf("owner pid %d on this host has exited", o.PID)}, true
	case err != nil:
		return judgement{}, false
	case p.state == 'Z' || p.state == 'X':
		return judgement{true, fmt.Sprintf("owner pid %d on this host has exited (not yet reaped)", o.PID)}, true
	case !o.Started.IsZero() && absDuration(p.started.Sub(o.Started)) > sameStartSlack:
		return judgement{true, fmt.Sprintf("owner pid %d on this host has exited: that pid is now another process, started %s (the owner started %s)",
			o.PID, p.started.Format(time.RFC3339), o.Started.Format(time.RFC3339))}, true
	}
	return judgement{false, fmt.Sprintf("owner pid %d on this host is running", o.PID)}, true
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
