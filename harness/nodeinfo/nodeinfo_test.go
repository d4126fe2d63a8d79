package nodeinfo

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name string, labels map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.33.13",
			OSImage: "Debian GNU/Linux 12 (bookworm)", KernelVersion: "6.1.0-28-cloud-amd64", ContainerRuntimeVersion: "containerd://1.7.24"}}}
}

func TestOfNamesThePool(t *testing.T) {
	assert.Equal(t, "workers", Of(node("w", nil)).Pool)
	cp := Of(node("cp", map[string]string{LabelControlPlane: ""}))
	assert.Equal(t, "control-plane", cp.Pool)
	assert.True(t, cp.ControlPlane)
	aks := Of(node("aks-np1-1", map[string]string{LabelAgentPool: "np1", LabelNodeImageVersion: "AKSUbuntu-2204gen2containerd-202511.01.0"}))
	assert.Equal(t, "np1", aks.Pool)
	assert.Equal(t, "AKSUbuntu-2204gen2containerd-202511.01.0", aks.Image)
	assert.Equal(t, "np2", Of(node("old", map[string]string{LabelAgentPoolLegacy: "np2"})).Pool)
	assert.Equal(t, "Debian GNU/Linux 12 (bookworm)", Of(node("w", nil)).Image, "no image label: the OS image")
}

func TestTheLineReadsBack(t *testing.T) {
	for _, n := range []*corev1.Node{
		node("kind-worker", nil),
		node("kind-control-plane", map[string]string{LabelControlPlane: ""}),
		node("aks-np1-1", map[string]string{LabelAgentPool: "np1", LabelNodeImageVersion: "AKSUbuntu-2204gen2containerd-202511.01.0"}),
	} {
		want := Of(n)
		for _, prefix := range []string{"", "initial state; Ready since 06:01:02; "} {
			got, ok := Parse(prefix + want.String())
			require.True(t, ok, want.String())
			assert.Equal(t, want, got)
		}
	}
	_, ok := Parse("Ready since 06:01:02")
	assert.False(t, ok)
	_, ok = Parse("node kind-worker")
	assert.False(t, ok, "a line without fields has no pool")
}

func TestImageLabel(t *testing.T) {
	assert.Equal(t, "v1.33.13-8053476985c0a201-refresh-fd783d8c", ImageLabel("rehearse/node:v1.33.13-8053476985c0a201-refresh-fd783d8c"))
	assert.Equal(t, "localhost-5000-node", ImageLabel("localhost:5000/node"))
	long := ImageLabel("rehearse/node:" + strings.Repeat("x", 70) + "-end")
	assert.Len(t, long, 63)
	assert.True(t, strings.HasSuffix(long, "-end"))
	w := node("w", map[string]string{LabelNodeImage: "v1.33.13-abc"})
	assert.Equal(t, "v1.33.13-abc", Of(w).Image)
}
