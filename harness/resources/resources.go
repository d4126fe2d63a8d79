// Package resources samples what the cgroup audit judges (catalogue class
// 5): each node's cgroup version and the kubelet's cgroup driver, and, for
// each of the app's pods, the limits its pod spec sets, the limits its
// runtime detected, and what it used. Samples go on the timeline
// (NodeCgroup and ResourceSample events), taken before a fault and after
// the recovery, so that the verdict can compare a pod's view and use
// across a move to other nodes (a node-image upgrade that changed the
// cgroup version).
//
// Everything is read through the API server, so it works on any cluster:
// the rehearsal app's own report through the pod proxy (GET /cgroup), the
// kubelet's configuration and stats through the node proxy (/configz,
// /stats/summary), and, for an app that reports nothing, what its
// container can read (/proc/self/cgroup) through pods/exec. A node's cgroup
// version comes from the node itself where the target can run commands on
// nodes (kind), else from what the pods on it see.
package resources

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	statsv1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/kube-rehearse/rehearse/fixtures/app/contract"
	"github.com/kube-rehearse/rehearse/harness/nodeinfo"
	"github.com/kube-rehearse/rehearse/harness/podexec"
	"github.com/kube-rehearse/rehearse/harness/target"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Sampler samples one app's pods on one cluster.
type Sampler struct {
	client    kubernetes.Interface
	rest      *rest.Config // for pods/exec; nil: not tried
	target    target.Target
	namespace string
	selector  string
	tl        *timeline.Timeline
	cgroups   map[string]string // node -> "v1" | "v2", as found
}

// New returns a sampler of the pods selected in namespace. rest and tgt
// may be nil (no exec into containers or nodes).
func New(client kubernetes.Interface, restCfg *rest.Config, tgt target.Target, namespace, selector string, tl *timeline.Timeline) *Sampler {
	return &Sampler{client: client, rest: restCfg, target: tgt, namespace: namespace, selector: selector, tl: tl, cgroups: map[string]string{}}
}

// timeout bounds each read of a sample.
const timeout = 10 * time.Second

// Nodes records every node's cgroup version and the kubelet's cgroup
// driver (NodeCgroup events), as far as they can be read.
func (s *Sampler) Nodes(ctx context.Context) error {
	nodes, err := s.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, n := range nodes.Items {
		s.node(ctx, n.Name)
	}
	return nil
}

func (s *Sampler) node(ctx context.Context, name string) {
	if _, done := s.cgroups[name]; done {
		return
	}
	version := ""
	if s.target != nil {
		c, cancel := context.WithTimeout(ctx, timeout)
		out, err := s.target.Exec(c, name, nil, "stat", "-fc", "%T", "/sys/fs/cgroup")
		cancel()
		if err == nil {
			version = fsVersion(strings.TrimSpace(string(out)))
		}
	}
	s.cgroups[name] = version
	driver := s.cgroupDriver(ctx, name)
	if s.tl != nil && (version != "" || driver != "") {
		detail := ""
		if driver != "" {
			detail = "kubelet cgroup driver " + driver
		}
		s.tl.AddEvent(timeline.Event{Offset: s.tl.Now(), Kind: timeline.EvNodeCgroup, Node: name, Name: version, Detail: detail, Reason: s.emulated(ctx, name)})
	}
}

// emulated is "emulated" for a VM node under QEMU's software emulation (its
// label says so), so that the CPU figures measured there are read for what
// they are.
func (s *Sampler) emulated(ctx context.Context, name string) string {
	n, err := s.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err == nil && n.Labels[nodeinfo.LabelVMAccel] == "tcg" {
		return "emulated"
	}
	return ""
}

// fsVersion maps the file system type of /sys/fs/cgroup to a version.
func fsVersion(fsType string) string {
	switch fsType {
	case "cgroup2fs":
		return "v2"
	case "tmpfs":
		return "v1" // legacy or hybrid: the controllers are on v1
	}
	return ""
}

// cgroupDriver reads the kubelet's cgroupDriver from its /configz.
func (s *Sampler) cgroupDriver(ctx context.Context, node string) string {
	c, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := s.client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node, "proxy", "configz").DoRaw(c)
	if err != nil {
		return ""
	}
	var cfg struct {
		KubeletConfig struct {
			CgroupDriver string `json:"cgroupDriver"`
		} `json:"kubeletconfig"`
	}
	if json.Unmarshal(raw, &cfg) != nil {
		return ""
	}
	return cfg.KubeletConfig.CgroupDriver
}

// Sample records a ResourceSample for each running pod of the app, named
// after the phase it ends.
func (s *Sampler) Sample(ctx context.Context, phase string) error {
	list, err := s.client.CoreV1().Pods(s.namespace).List(ctx, metav1.ListOptions{LabelSelector: s.selector})
	if err != nil {
		return err
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	var pods []*corev1.Pod
	byNode := map[string][]*corev1.Pod{}
	for i := range list.Items {
		p := &list.Items[i]
		if p.DeletionTimestamp != nil || p.Spec.NodeName == "" || p.Status.Phase != corev1.PodRunning || len(p.Spec.Containers) == 0 {
			continue
		}
		pods = append(pods, p)
		byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
	}
	stats := map[string]map[string]statsv1.PodStats{} // node -> pod -> stats
	for node, on := range byNode {
		s.node(ctx, node)
		stats[node] = s.freshStats(ctx, node, on)
	}
	for _, p := range pods {
		smp := s.pod(ctx, p, stats[p.Spec.NodeName])
		if s.tl != nil {
			s.tl.AddEvent(timeline.Event{Offset: s.tl.Now(), Kind: timeline.EvResourceSample, Pod: p.Name, UID: string(p.UID),
				Node: p.Spec.NodeName, Name: phase, Detail: smp.Encode()})
		}
	}
	return nil
}

// statsWait bounds how long a sample waits for the kubelet's stats of the
// pods on a node to be newer than their readiness. The kubelet's stats
// come from cAdvisor, which refreshes a container every 10 to 15 s; stats
// taken while the app was still starting (its heap not yet allocated)
// read as a few MiB, and a later sample then looked like a jump (measured:
// 2 MiB before, 73 MiB after, for an app that held 64 MiB throughout).
const statsWait = 20 * time.Second

// freshStats reads the node's stats of the app's pods, again every 2 s
// until each pod's are newer than its readiness or statsWait has passed.
func (s *Sampler) freshStats(ctx context.Context, node string, pods []*corev1.Pod) map[string]statsv1.PodStats {
	deadline := time.Now().Add(statsWait)
	for {
		stats := s.summary(ctx, node)
		stale := false
		for _, p := range pods {
			if st, ok := stats[p.Name]; ok && !statsFresh(p, st) {
				stale = true
			}
		}
		if !stale || time.Now().After(deadline) {
			return stats
		}
		select {
		case <-ctx.Done():
			return stats
		case <-time.After(2 * time.Second):
		}
	}
}

// statsFresh reports whether a pod's stats were taken after it became
// Ready (for a pod that is not Ready, any stats will do).
func statsFresh(p *corev1.Pod, st statsv1.PodStats) bool {
	var ready time.Time
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			ready = c.LastTransitionTime.Time
		}
	}
	if ready.IsZero() {
		return true
	}
	return st.Memory != nil && !st.Memory.Time.Time.Before(ready) && (st.CPU == nil || !st.CPU.Time.Time.Before(ready))
}

// pod samples one pod: its spec's limits, its runtime's view, its use.
func (s *Sampler) pod(ctx context.Context, p *corev1.Pod, stats map[string]statsv1.PodStats) timeline.ResourceSample {
	c := p.Spec.Containers[0]
	smp := timeline.ResourceSample{Cgroup: s.cgroups[p.Spec.NodeName]}
	if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		smp.CPULimit = q.AsApproximateFloat64()
	}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		smp.MemoryLimit = q.Value()
	}
	if r, ok := s.report(ctx, p, c); ok {
		smp.RuntimeMode, smp.RuntimeFrom = r.Mode, r.Version
		smp.CPUSeen, smp.MemorySeen = r.CPULimit, r.MemoryLimit
		smp.CPUFromHost, smp.MemFromHost, smp.HeapBytes = r.CPUFromHost, r.MemFromHost, r.HeapBytes
		if smp.Cgroup == "" {
			smp.Cgroup = r.Layout
		}
	} else if sees, err := s.containerSees(ctx, p, c.Name); err == nil {
		smp.ContainerSee = sees
		if smp.Cgroup == "" {
			smp.Cgroup = sees
		}
	} else {
		smp.Unread = append(smp.Unread, "the app reports nothing of its limits and its container could not be read: "+err.Error())
	}
	if st, ok := stats[p.Name]; ok && !statsFresh(p, st) {
		smp.Unread = append(smp.Unread, "the kubelet's stats of the pod predate its readiness (the app was still starting): its use is not counted")
	} else if ok {
		if st.CPU != nil && st.CPU.UsageNanoCores != nil {
			smp.CPUUsage = float64(*st.CPU.UsageNanoCores) / 1e9
		}
		if st.Memory != nil && st.Memory.WorkingSetBytes != nil {
			smp.MemoryWorkingSet = int64(*st.Memory.WorkingSetBytes)
		}
	} else {
		smp.Unread = append(smp.Unread, "no kubelet stats for the pod on node "+p.Spec.NodeName)
	}
	return smp
}

// report asks the app for its cgroup report (the rehearsal app serves one
// on GET /cgroup) through the API server's pod proxy, on each port the
// container declares.
func (s *Sampler) report(ctx context.Context, p *corev1.Pod, c corev1.Container) (contract.CgroupReport, bool) {
	for _, port := range c.Ports {
		rc, cancel := context.WithTimeout(ctx, timeout)
		raw, err := s.client.CoreV1().Pods(p.Namespace).ProxyGet("http", p.Name, fmt.Sprint(port.ContainerPort), "/cgroup", nil).DoRaw(rc)
		cancel()
		if err != nil {
			continue
		}
		var r contract.CgroupReport
		if json.Unmarshal(raw, &r) == nil && r.Mode != "" {
			return r, true
		}
	}
	return contract.CgroupReport{}, false
}

// containerSees reads /proc/self/cgroup in the container: a single "0::"
// line is cgroup v2, anything else v1. It needs cat in the image.
func (s *Sampler) containerSees(ctx context.Context, p *corev1.Pod, container string) (string, error) {
	ec, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, err := podexec.Output(ec, s.client, s.rest, p.Namespace, p.Name, container, "cat", "/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	return cgroupOf(out), nil
}

// cgroupOf reads /proc/self/cgroup: on cgroup v2 it is the one line
// "0::/path"; on v1 (or hybrid) one line per hierarchy.
func cgroupOf(procSelfCgroup string) string {
	lines := strings.Fields(strings.TrimSpace(procSelfCgroup))
	if len(lines) == 1 && strings.HasPrefix(lines[0], "0::") {
		return "v2"
	}
	return "v1"
}

// summary reads the kubelet's stats of a node's pods, by pod name (the
// app's namespace only).
func (s *Sampler) summary(ctx context.Context, node string) map[string]statsv1.PodStats {
	c, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := s.client.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes", node, "proxy", "stats", "summary").DoRaw(c)
	if err != nil {
		return nil
	}
	var sum statsv1.Summary
	if json.Unmarshal(raw, &sum) != nil {
		return nil
	}
	out := map[string]statsv1.PodStats{}
	for _, p := range sum.Pods {
		if p.PodRef.Namespace == s.namespace {
			out[p.PodRef.Name] = p
		}
	}
	return out
}
