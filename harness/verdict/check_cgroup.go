package verdict

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// sampled is one ResourceSample event, decoded.
type sampled struct {
	pod, node string
	at        time.Duration
	timeline.ResourceSample
}

const mib = 1 << 20

// cgroupCheck judges what the app's runtime saw of its container limits
// and what the app used, at the end of the baseline (before the fault) and
// of the recovery (after its pods moved): catalogue class 5, a runtime
// that reads only one cgroup version's files loses its limits on nodes of
// the other, sizes heaps and thread pools from the host, and uses more.
func (a *analysis) cgroupCheck(w *window) Check {
	nodes := map[string]string{} // node -> cgroup version
	var before, after []sampled
	for i := range a.s.Events {
		e := &a.s.Events[i]
		switch e.Kind {
		case timeline.EvNodeCgroup:
			if e.Name != "" {
				nodes[e.Node] = e.Name
			}
		case timeline.EvResourceSample:
			smp, err := timeline.DecodeResourceSample(e.Detail)
			if err != nil {
				continue
			}
			s := sampled{pod: e.Pod, node: e.Node, at: e.Offset, ResourceSample: smp}
			if smp.Cgroup != "" && nodes[e.Node] == "" {
				nodes[e.Node] = smp.Cgroup
			}
			switch {
			case e.Offset < w.from():
				before = append(before, s)
			case w.contains(e.Offset) || e.Offset == w.to():
				after = append(after, s)
			}
		}
	}
	if len(before)+len(after) == 0 {
		return cannotJudge(CheckCgroup, "no resource samples",
			"the cgroup check samples each pod at the end of the baseline and of the recovery: see the timeline's notes for why nothing was sampled")
	}
	versions := map[string]int{}
	for _, v := range nodes {
		versions[v]++
	}
	var figs []Figure
	figs = append(figs, count("nodes_cgroup_v1", versions["v1"]), count("nodes_cgroup_v2", versions["v2"]))
	var details []string
	modes := modeText(versions)
	switch {
	case versions["v1"] > 0 && versions["v2"] == 0:
		details = append(details, "every node is cgroup v1: a move to cgroup v2 (AKS node images from Kubernetes 1.25 on) could not be rehearsed "+
			"on this cluster; rehearse it where nodes of both versions exist (a cgroup v2 host, or a pool on a newer node image)")
	case versions["v2"] > 0 && versions["v1"] == 0:
		details = append(details, "every node is cgroup v2: an app moving from cgroup v1 nodes was not rehearsed here")
	}

	// Runtimes blind to their limits.
	var blind []Evidence
	blindPods := map[string]bool{}
	silent := map[string]bool{}
	for _, s := range append(append([]sampled{}, before...), after...) {
		if s.RuntimeMode == "" {
			silent[s.pod] = true
			continue
		}
		memBlind := s.MemoryLimit > 0 && s.MemFromHost
		cpuBlind := s.CPULimit > 0 && s.CPUFromHost
		if !memBlind && !cpuBlind || blindPods[s.pod] {
			continue
		}
		blindPods[s.pod] = true
		var parts []string
		if memBlind {
			parts = append(parts, fmt.Sprintf("memory %s from the host (its limit is %s)", bytesText(s.MemorySeen), bytesText(s.MemoryLimit)))
		}
		if cpuBlind {
			parts = append(parts, fmt.Sprintf("%g CPUs from the host (its limit is %g)", s.CPUSeen, s.CPULimit))
		}
		text := fmt.Sprintf("pod %s on node %s (cgroup %s): its runtime reads %s and found no limit there, so it sized itself from %s",
			s.pod, orDash(s.node), orDash(s.Cgroup), readsText(s.RuntimeMode), strings.Join(parts, " and "))
		if s.HeapBytes > 0 && memBlind {
			text += fmt.Sprintf("; its heap is %s", bytesText(s.HeapBytes))
		}
		blind = append(blind, Evidence{Pod: s.pod, Node: s.node, At: s.at, Until: s.at, Text: text})
	}
	figs = append(figs, count("pods_blind_to_limits", len(blindPods)))
	for _, p := range sortedKeys(silent) {
		details = append(details, "pod "+p+": the app does not say what its runtime detected; only its use is judged")
	}

	// Use before and after.
	memBefore, cpuBefore, nb := meanUse(before)
	memAfter, cpuAfter, na := meanUse(after)
	if nb > 0 {
		figs = append(figs, Figure{Name: "memory_before_mib", Value: float64(memBefore) / mib, Unit: UnitCount}, Figure{Name: "cpu_before", Value: cpuBefore, Unit: UnitCount})
	}
	if na > 0 {
		figs = append(figs, Figure{Name: "memory_after_mib", Value: float64(memAfter) / mib, Unit: UnitCount}, Figure{Name: "cpu_after", Value: cpuAfter, Unit: UnitCount})
	}
	grew := false
	if nb > 0 && na > 0 && memBefore > 0 {
		growth := float64(memAfter) / float64(memBefore)
		figs = append(figs, ratio("memory_growth", growth-1))
		grew = growth > 1+a.th.MaxMemoryGrowth && memAfter-memBefore > 32*mib
		details = append(details, fmt.Sprintf("memory per pod %s before, %s after (%+.0f%%); CPU %.3f before, %.3f after",
			bytesText(memBefore), bytesText(memAfter), (growth-1)*100, cpuBefore, cpuAfter))
	}
	if e := emulationText(a.emulated, before, after); e != "" {
		details = append(details, e)
	}
	ooms := a.oomKills(w)
	figs = append(figs, count("oom_kills", len(ooms)))
	movedOOMs, from, to := oomsAfterCgroupChange(ooms, nodes, before)

	c := Check{Measured: figs, Details: details}
	switch {
	case len(blind) > 0:
		c.Status = Fail
		c.Summary = fmt.Sprintf("%s of the app ran with a runtime blind to its container limits (%s)", plural(len(blindPods), "pod", "pods"), modes)
		c.Diagnosis = &Diagnosis{Class: ClassCgroup, Title: ClassCgroup.Title(), Evidence: append(blind, ooms...), Fix: fixCgroup}
	case grew && sameCgroup(nodes, before, after):
		// Nothing about the limits the runtimes saw changed: a jump has
		// another cause, and saying class 5 would send people the wrong way.
		c.Status = Fail
		c.Summary = fmt.Sprintf("memory per pod grew from %s to %s after the pods moved, on nodes of the same cgroup version (limit +%.0f%%; %s)",
			bytesText(memBefore), bytesText(memAfter), a.th.MaxMemoryGrowth*100, modes)
		c.Diagnosis = &Diagnosis{Class: ClassNone, Title: "memory use jumped after the pods moved", Evidence: ooms,
			Fix: "the runtimes saw the same limits before and after (the same cgroup version): compare what the pods did on their new nodes " +
				"(failing calls piling up, caches refilling, a different kernel or runtime of the new node image)"}
	case grew:
		c.Status = Fail
		c.Summary = fmt.Sprintf("memory per pod grew from %s to %s after the pods moved (limit +%.0f%%; %s)", bytesText(memBefore), bytesText(memAfter), a.th.MaxMemoryGrowth*100, modes)
		c.Diagnosis = &Diagnosis{Class: ClassCgroup, Title: "memory use jumped after the pods moved", Evidence: ooms,
			Fix: "find what the runtime sized from its new node: " + fixCgroup}
	case len(movedOOMs) > 0:
		// A runtime that sized itself from the node is killed before it
		// can say so (often before it ever serves): the kills themselves,
		// only where the cgroup version changed, are the evidence.
		c.Status = Fail
		c.Summary = fmt.Sprintf("%s OOM-killed on cgroup %s nodes after the pods moved there from cgroup %s nodes, where none was (%s)",
			plural(len(movedOOMs), "container was", "containers were"), to, from, modes)
		c.Diagnosis = &Diagnosis{Class: ClassCgroup, Title: "OOM-killed on the nodes of the other cgroup version", Evidence: movedOOMs,
			Fix: "a runtime that reads only cgroup " + from + " files finds no limit on cgroup " + to + " nodes and sizes its heap from the node's memory: " + fixCgroup}
	case len(ooms) > 0:
		c.Status = Fail
		c.Summary = fmt.Sprintf("%s OOM-killed (%s)", plural(len(ooms), "container was", "containers were"), modes)
		c.Diagnosis = &Diagnosis{Class: ClassNone, Title: "containers were OOM-killed", Evidence: ooms,
			Fix: "the container used more memory than its limit: size heaps and buffers from the limit the runtime sees (check it detects it), or raise the limit"}
	default:
		c.Status = Pass
		c.Summary = "every pod's runtime saw its container limits (" + modes + ")"
		if len(silent) > 0 && len(silent) == len(podsOf(before, after)) {
			c.Summary = "use judged only: the app does not say what its runtime detected (" + modes + ")"
		}
	}
	return c
}

// sameCgroup reports whether the pods ran on nodes of one and the same
// cgroup version (nodes: node -> version) before and after they moved,
// known for every sample.
func sameCgroup(nodes map[string]string, before, after []sampled) bool {
	return oneCgroup(nodes, append(append([]sampled{}, before...), after...)) != ""
}

// oneCgroup is the cgroup version every sample ran on (its node's, else
// what the pod saw), or "" when it is unknown for one or they differ.
func oneCgroup(nodes map[string]string, ss []sampled) string {
	version := ""
	for _, s := range ss {
		v := cmp.Or(nodes[s.node], s.Cgroup)
		if v == "" || version != "" && v != version {
			return ""
		}
		version = v
	}
	return version
}

// emulationText says which of the samples' nodes were VMs under QEMU's
// software emulation, whose CPU figures read about 15 times what the same
// work costs on real hardware ("" when none was).
func emulationText(emulated map[string]bool, before, after []sampled) string {
	var where []string
	for _, phase := range []struct {
		name string
		ss   []sampled
	}{{"before", before}, {"after", after}} {
		var on []string
		for _, s := range phase.ss {
			if emulated[s.node] && !slices.Contains(on, s.node) {
				on = append(on, s.node)
			}
		}
		if len(on) > 0 {
			where = append(where, phase.name+" on "+strings.Join(on, ", "))
		}
	}
	if len(where) == 0 {
		return ""
	}
	return "pods sampled " + strings.Join(where, "; ") + ": VMs under QEMU's software emulation, whose CPU runs about 15 times slower than real hardware's, so CPU use measured there reads that much higher"
}

// oomsAfterCgroupChange are the OOM kills on nodes of a cgroup version
// other than the one every pod ran on before the fault (from), with that
// version and the new one (to).
func oomsAfterCgroupChange(ooms []Evidence, nodes map[string]string, before []sampled) (moved []Evidence, from, to string) {
	if from = oneCgroup(nodes, before); from == "" {
		return nil, "", ""
	}
	for _, o := range ooms {
		if v := nodes[o.Node]; v != "" && v != from {
			moved, to = append(moved, o), v
		}
	}
	return moved, from, to
}

// oomKills are the app's containers the kernel killed for memory in the window.
func (a *analysis) oomKills(w *window) []Evidence {
	var out []Evidence
	for _, e := range a.windowEvents(w) {
		if e.Kind == timeline.EvContainerExited && e.Reason == "OOMKilled" {
			out = append(out, Evidence{Pod: e.Pod, Node: e.Node, At: e.Offset, Until: e.Offset, Count: 1,
				Text: fmt.Sprintf("pod %s (node %s) was OOM-killed at %s", e.Pod, orDash(e.Node), fmtAt(e.Offset))})
		}
	}
	return out
}

func meanUse(ss []sampled) (mem int64, cpu float64, n int) {
	var total int64
	for _, s := range ss {
		if s.MemoryWorkingSet == 0 {
			continue
		}
		total += s.MemoryWorkingSet
		cpu += s.CPUUsage
		n++
	}
	if n == 0 {
		return 0, 0, 0
	}
	return total / int64(n), cpu / float64(n), n
}

func podsOf(lists ...[]sampled) map[string]bool {
	out := map[string]bool{}
	for _, l := range lists {
		for _, s := range l {
			out[s.pod] = true
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func modeText(versions map[string]int) string {
	switch {
	case versions["v1"] > 0 && versions["v2"] > 0:
		return fmt.Sprintf("nodes on cgroup v1 (%d) and v2 (%d)", versions["v1"], versions["v2"])
	case versions["v2"] > 0:
		return "cgroup v2 nodes only"
	case versions["v1"] > 0:
		return "cgroup v1 nodes only"
	}
	return "the nodes' cgroup versions unknown"
}

func readsText(mode string) string {
	switch mode {
	case "v1-only":
		return "cgroup v1 files only"
	case "v2-only":
		return "cgroup v2 files only"
	}
	return "cgroup " + mode + " files"
}

func bytesText(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	default:
		return fmt.Sprintf("%.0f MiB", float64(b)/mib)
	}
}

const fixCgroup = "use a runtime that reads both cgroup versions (JDK 8u372, 11.0.16, 17 or later; .NET 5 or later; Node.js 20 or later; " +
	"Go with automaxprocs 1.5.1 or later, or Go 1.25's own GOMAXPROCS), or give it its limits explicitly (-Xmx or -XX:MaxRAMPercentage " +
	"with a container-aware JDK, GOMEMLIMIT and GOMAXPROCS, DOTNET_GCHeapHardLimit): a runtime that sizes its heap and thread pools " +
	"from the host uses far more than its limit and is OOM-killed or throttled"
