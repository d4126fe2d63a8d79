package target

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- {name: a, cluster: {server: "https://a.example.com:6443"}}
- {name: b, cluster: {server: "https://b.example.com"}}
users:
- {name: u, user: {token: "x"}}
contexts:
- {name: staging, context: {cluster: a, user: u}}
- {name: dev, context: {cluster: b, user: u}}
current-context: dev
`

func TestConnectReadsTheContextWithoutContactingIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config")
	require.NoError(t, os.WriteFile(path, []byte(kubeconfig), 0o600))

	e, err := Connect(path, "staging")
	require.NoError(t, err)
	assert.Equal(t, "staging", e.Context())
	assert.Equal(t, "https://a.example.com:6443", e.Server())
	assert.Equal(t, "cluster https://a.example.com:6443 (context staging)", e.Name())
	assert.False(t, e.Owned())

	cur, err := Connect(path, "")
	require.NoError(t, err)
	assert.Equal(t, "dev", cur.Context(), "the file's current context")

	_, err = Connect(path, "prod")
	assert.ErrorContains(t, err, `no context "prod"`)
	_, err = Connect(filepath.Join(t.TempDir(), "missing"), "")
	assert.Error(t, err)
}

func TestWhatNeedsTheMachinesIsNotAvailable(t *testing.T) {
	e := &Existing{}
	ctx := context.Background()
	_, addErr := e.AddNode(ctx, NodeSpec{})
	_, execErr := e.Exec(ctx, "n", nil, "true")
	_, reachErr := e.ReachPods(ctx)
	for _, err := range []error{addErr, execErr, reachErr, e.RemoveNode(ctx, "n"), e.StopNode(ctx, "n"),
		e.UpgradeControlPlane(ctx, "v1.34.4", "", nil), e.LoadImageArchives(ctx, "app.tar"), e.ExportLogs(ctx, "")} {
		assert.True(t, errors.Is(err, ErrNotAvailable), "%v", err)
	}
	assert.NoError(t, e.LoadImageArchives(ctx), "nothing to load")
}

func TestAPINodeReadsAKSLabels(t *testing.T) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "aks-np1-1", Labels: map[string]string{
		"kubernetes.azure.com/agentpool":          "np1",
		"kubernetes.azure.com/node-image-version": "AKSUbuntu-2204gen2containerd-202411.12.0",
	}}}
	n.Status.NodeInfo.OSImage = "Ubuntu 22.04.5 LTS"
	got := apiNode(n)
	assert.Equal(t, "np1", got.Pool)
	assert.Equal(t, "AKSUbuntu-2204gen2containerd-202411.12.0", got.Image)

	plain := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cp", Labels: map[string]string{"node-role.kubernetes.io/control-plane": ""}}}
	plain.Status.NodeInfo.OSImage = "Debian GNU/Linux 12"
	got = apiNode(plain)
	assert.Equal(t, "control-plane", got.Pool)
	assert.True(t, got.ControlPlane)
	assert.Equal(t, "Debian GNU/Linux 12", got.Image)
}
