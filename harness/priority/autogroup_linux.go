package priority

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

const autogroupFile = "/proc/self/autogroup"

// autogroupNice reads the nice value of the process's autogroup
// ("/autogroup-8577 nice 0"); ok is false when it has none: autogroups
// switched off, or the file empty because the process's session was never
// given one (no setsid on the way from init, as under some CI runners).
func autogroupNice() (nice int, ok bool, err error) {
	if b, err := os.ReadFile("/proc/sys/kernel/sched_autogroup_enabled"); err != nil || strings.TrimSpace(string(b)) != "1" {
		return 0, false, nil
	}
	b, err := os.ReadFile(autogroupFile)
	if err != nil {
		return 0, false, nil
	}
	return parseAutogroup(string(b))
}

func parseAutogroup(s string) (nice int, ok bool, err error) {
	if strings.TrimSpace(s) == "" {
		return 0, false, nil
	}
	f := strings.Fields(s)
	if len(f) == 3 && f[1] == "nice" {
		if n, err := strconv.Atoi(f[2]); err == nil {
			return n, true, nil
		}
	}
	return 0, false, fmt.Errorf("%s: unexpected content %q", autogroupFile, s)
}

func setAutogroup(nice int) error {
	return writeFile(autogroupFile, nice)
}
