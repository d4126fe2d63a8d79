package verdict

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// kindList is "55 refused, 2 reset", most frequent first.
func kindList(by map[timeline.ErrorKind]int) string {
	kinds := make([]timeline.ErrorKind, 0, len(by))
	for k, n := range by {
		if n > 0 && k != timeline.ErrNone {
			kinds = append(kinds, k)
		}
	}
	sort.Slice(kinds, func(i, j int) bool {
		if by[kinds[i]] != by[kinds[j]] {
			return by[kinds[i]] > by[kinds[j]]
		}
		return kinds[i] < kinds[j]
	})
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%d %s", by[k], k)
	}
	return strings.Join(parts, ", ")
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func roundUp(d, unit time.Duration) time.Duration {
	if r := d % unit; r != 0 {
		return d + unit - r
	}
	return d
}

func untilText(to time.Duration) string {
	if to == timeline.Forever {
		return "the end"
	}
	return fmtAt(to)
}

// describeEvent is one event as evidence text.
func describeEvent(e *timeline.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", fmtAt(e.Offset), e.Kind)
	for _, kv := range [][2]string{{"pod", e.Pod}, {"node", e.Node}, {"ip", e.IP}, {"name", e.Name}, {"reason", e.Reason}, {"detail", e.Detail}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
		}
	}
	if e.ExitCode != nil {
		fmt.Fprintf(&b, " exit=%d", *e.ExitCode)
	}
	return b.String()
}
