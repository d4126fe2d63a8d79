package priority

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// Raise sets every thread of the process to Nice and gives the process's
// CPU group the same edge: its autogroup when the process sits in the root
// CPU cgroup, else a CPU cgroup of its own (see cgroup_linux.go). Threads the
// Go runtime starts later inherit the value from the thread that starts them.
// The error says why nothing was changed.
func Raise() (*Raised, error) {
	threadsWas, err := threadNice()
	if err != nil {
		return nil, err
	}
	if threadsWas <= Nice {
		return &Raised{Detail: fmt.Sprintf("already at nice %d", threadsWas)}, nil
	}
	if err := setThreads(Nice); err != nil {
		_ = setThreads(threadsWas)
		return nil, fmt.Errorf("raise the threads' priority: %w", err)
	}
	group, err := raiseGroup()
	if err != nil {
		_ = setThreads(threadsWas)
		return nil, err
	}
	return &Raised{Detail: fmt.Sprintf("nice %d (was %d); %s", Nice, threadsWas, group.detail), restore: undo(group, threadsWas)}, nil
}

// undo puts the group and the threads back. A group left as is (no
// autogroup, a shared hierarchy) has nothing to restore.
func undo(group groupChange, threadsWas int) func() {
	return func() {
		if group.restore != nil {
			group.restore()
		}
		_ = setThreads(threadsWas)
	}
}

// groupChange is how the process's CPU group was raised and how to undo it.
type groupChange struct {
	detail  string
	restore func()
}

// raiseGroup raises the scheduling entity that holds the whole process.
// Linux shares a contended CPU first between groups (autogroups: one per
// session; cgroups), then between the threads inside a group: a nice value
// alone only wins against the process's own group mates.
func raiseGroup() (groupChange, error) {
	cg, err := ownCPUCgroup()
	if err != nil {
		return groupChange{}, err
	}
	if cg.path == "/" {
		return raiseAutogroup()
	}
	return raiseCgroup(cg)
}

func raiseAutogroup() (groupChange, error) {
	was, ok, err := autogroupNice()
	if err != nil {
		return groupChange{}, err
	}
	if !ok {
		// Its threads then compete at the top level themselves, where
		// their nice value counts against the kind nodes' cgroup.
		return groupChange{detail: "it belongs to no autogroup"}, nil
	}
	if err := setAutogroup(Nice); err != nil {
		return groupChange{}, fmt.Errorf("raise the autogroup's priority: %w", err)
	}
	return groupChange{
		detail:  fmt.Sprintf("its autogroup too (was %d)", was),
		restore: func() { _ = setAutogroup(was) },
	}, nil
}

// threadNice is the calling thread's nice value. The raw system call
// returns 20 - nice, so that its result is never negative.
func threadNice() (int, error) {
	raw, _, errno := syscall.Syscall(syscall.SYS_GETPRIORITY, syscall.PRIO_PROCESS, 0, 0)
	if errno != 0 {
		return 0, fmt.Errorf("read the scheduling priority: %w", errno)
	}
	return 20 - int(raw), nil
}

// setThreads sets every thread of the process to nice. Linux applies
// setpriority(PRIO_PROCESS, tid) to one thread only. A thread started while
// the list is read is caught by the second pass.
func setThreads(nice int) error {
	for pass := 0; pass < 2; pass++ {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil && !errors.Is(err, syscall.ESRCH) {
				return err // ESRCH: the thread ended meanwhile
			}
		}
	}
	return nil
}
