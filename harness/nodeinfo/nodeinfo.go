// Package nodeinfo says what a node is in the terms an upgrade changes: its
// pool, its kubelet's version, its node image, OS, kernel and container
// runtime. The observer writes it on the timeline as one line (Info.String)
// and the upgrade watcher reads it back (Parse), so that what a node was
// before an upgrade and what replaced it are both on the record.
package nodeinfo

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Labels that name a node's pool and image where the provider sets them
// (AKS; "agentpool" is the older AKS label).
const (
	LabelAgentPool        = "kubernetes.azure.com/agentpool"
	LabelAgentPoolLegacy  = "agentpool"
	LabelNodeImageVersion = "kubernetes.azure.com/node-image-version"
	LabelControlPlane     = "node-role.kubernetes.io/control-plane"
	// LabelNodeImage is the node image of a kind node the harness made
	// (its tag, as a label value allows): what AKS's node-image-version
	// label is on AKS.
	LabelNodeImage = "rehearse.io/node-image"
	// LabelVMAccel marks a VM node the harness made (a QEMU VM rather than
	// a container) with QEMU's accelerator: "kvm", or "tcg" for software
	// emulation, where the node's CPU runs about 15 times slower.
	LabelVMAccel = "rehearse.io/vm-accel"
)

// Pools of nodes that carry no provider pool label (kind's).
const (
	PoolWorkers      = "workers"
	PoolControlPlane = "control-plane"
)

// Info is what a node is.
type Info struct {
	Name         string
	Pool         string // the AKS agent pool; else "control-plane" or "workers"
	ControlPlane bool
	Kubelet      string // the kubelet's version
	Image        string // the node image: AKS's node-image-version label, else the OS image
	OS           string
	Kernel       string
	Runtime      string
}

// Of reads a node's Info.
func Of(n *corev1.Node) Info {
	_, cp := n.Labels[LabelControlPlane]
	ni := n.Status.NodeInfo
	i := Info{Name: n.Name, ControlPlane: cp, Pool: AgentPool(n), Kubelet: ni.KubeletVersion,
		Image: firstLabel(n, LabelNodeImageVersion, LabelNodeImage), OS: ni.OSImage, Kernel: ni.KernelVersion, Runtime: ni.ContainerRuntimeVersion}
	if i.Pool == "" {
		i.Pool = PoolWorkers
		if cp {
			i.Pool = PoolControlPlane
		}
	}
	if i.Image == "" {
		i.Image = ni.OSImage
	}
	return i
}

// AgentPool is the AKS agent pool a node's labels name ("" if none).
func AgentPool(n *corev1.Node) string { return firstLabel(n, LabelAgentPool, LabelAgentPoolLegacy) }

func firstLabel(n *corev1.Node, keys ...string) string {
	for _, k := range keys {
		if v := n.Labels[k]; v != "" {
			return v
		}
	}
	return ""
}

// ImageLabel is the LabelNodeImage value of a node image reference: its
// tag (the repository when it has none), cut to what a label value may be
// (63 characters of letters, digits, '-', '_' and '.', starting and ending
// with a letter or digit).
func ImageLabel(ref string) string {
	v := ref
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		v = ref[i+1:]
	}
	b := []byte(v)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '-'
		}
	}
	v = string(b)
	if len(v) > 63 {
		v = v[len(v)-63:] // the end tells variants apart
	}
	return strings.Trim(v, "-_.")
}

// The line's fields, in the order written. Values never hold ", " in
// practice (versions, image names, OS names); a value that did would be
// cut there when read back.
var fields = []struct {
	key string
	get func(*Info) *string
}{
	{"pool", func(i *Info) *string { return &i.Pool }},
	{"kubelet", func(i *Info) *string { return &i.Kubelet }},
	{"image", func(i *Info) *string { return &i.Image }},
	{"os", func(i *Info) *string { return &i.OS }},
	{"kernel", func(i *Info) *string { return &i.Kernel }},
	{"runtime", func(i *Info) *string { return &i.Runtime }},
}

const controlPlaneField = "control-plane"

// String is the line written on the timeline:
// "node NAME: pool P, kubelet V, image I, os O, kernel K, runtime R".
func (i Info) String() string {
	var parts []string
	for _, f := range fields {
		if v := *f.get(&i); v != "" {
			parts = append(parts, f.key+" "+v)
		}
	}
	if i.ControlPlane {
		parts = append(parts, controlPlaneField)
	}
	if len(parts) == 0 {
		return "node " + i.Name
	}
	return "node " + i.Name + ": " + strings.Join(parts, ", ")
}

// Parse finds an Info line in s (an event's detail, where it may follow
// other text) and reads it back.
func Parse(s string) (Info, bool) {
	at := strings.Index(s, "node ")
	for at > 0 && s[at-1] != ' ' {
		next := strings.Index(s[at+1:], "node ")
		if next < 0 {
			return Info{}, false
		}
		at += 1 + next
	}
	if at < 0 {
		return Info{}, false
	}
	rest := s[at+len("node "):]
	name, body, ok := strings.Cut(rest, ": ")
	if !ok || name == "" || strings.ContainsAny(name, " ;,") {
		return Info{}, false
	}
	i := Info{Name: name}
	for _, part := range strings.Split(body, ", ") {
		if part == controlPlaneField {
			i.ControlPlane = true
			continue
		}
		key, val, _ := strings.Cut(part, " ")
		for _, f := range fields {
			if f.key == key {
				*f.get(&i) = val
			}
		}
	}
	return i, i.Pool != ""
}
