package priority

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

const autogroupFile = "/proc/self/autogroup"

// Raise sets the process's autogroup and every one of its threads to Nice.
// Threads the Go runtime starts later inherit the value from the thread that
// starts them. The error says why nothing was changed.
func Raise() (*Raised, error) {
	threadsWas, err := threadNice()
	if err != nil {
		return nil, err
	}
	if threadsWas <= Nice {
		return &Raised{Detail: fmt.Sprintf("already at nice %d", threadsWas)}, nil
	}
	groupWas, hasGroup, err := autogroupNice()
	if err != nil {
		return nil, err
	}
	if hasGroup {
		if err := setAutogroup(Nice); err != nil {
			return nil, fmt.Errorf("raise the autogroup's priority: %w", err)
		}
	}
	if err := setThreads(Nice); err != nil {
		if hasGroup {
			_ = setAutogroup(groupWas)
		}
		return nil, fmt.Errorf("raise the threads' priority: %w", err)
	}
	detail := fmt.Sprintf("nice %d (was %d)", Nice, threadsWas)
	if hasGroup {
		detail += fmt.Sprintf(", its autogroup too (was %d)", groupWas)
	}
	return &Raised{Detail: detail, restore: func() {
		_ = setThreads(threadsWas)
		if hasGroup {
			_ = setAutogroup(groupWas)
		}
	}}, nil
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

// autogroupNice reads the nice value of the process's autogroup
// ("/autogroup-8577 nice 0"); ok is false when the kernel schedules
// without autogroups.
func autogroupNice() (nice int, ok bool, err error) {
	if b, err := os.ReadFile("/proc/sys/kernel/sched_autogroup_enabled"); err != nil || strings.TrimSpace(string(b)) != "1" {
		return 0, false, nil
	}
	b, err := os.ReadFile(autogroupFile)
	if err != nil {
		return 0, false, nil
	}
	f := strings.Fields(string(b))
	if len(f) != 3 || f[1] != "nice" {
		return 0, false, fmt.Errorf("%s: unexpected content %q", autogroupFile, string(b))
	}
	n, err := strconv.Atoi(f[2])
	if err != nil {
		return 0, false, fmt.Errorf("%s: unexpected content %q", autogroupFile, string(b))
	}
	return n, true, nil
}

func setAutogroup(nice int) error {
	return os.WriteFile(autogroupFile, []byte(strconv.Itoa(nice)), 0)
}
