package suite

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-rehearse/rehearse/scenarios/dns"
)

// ClusterDNS is what a DNS fault changes and its revert must put back:
// the Corefile, CoreDNS's replicas, and on every node its resolver file
// and its packet filter's raw table.
func ClusterDNS(ctx context.Context, t *testing.T) map[string]string {
	t.Helper()
	cs := Env.Target.Client()
	out := map[string]string{}
	cm, err := cs.CoreV1().ConfigMaps(dns.Namespace).Get(ctx, dns.ConfigMap, metav1.GetOptions{})
	require.NoError(t, err)
	out["Corefile"] = cm.Data[dns.CorefileKey]
	d, err := cs.AppsV1().Deployments(dns.Namespace).Get(ctx, dns.Deployment, metav1.GetOptions{})
	require.NoError(t, err)
	out["coredns replicas"] = fmt.Sprint(*d.Spec.Replicas)
	nodes, err := Env.Target.Nodes(ctx)
	require.NoError(t, err)
	for _, n := range nodes {
		resolv, err := Env.Target.Exec(ctx, n.Name, nil, "cat", "/etc/resolv.conf")
		require.NoError(t, err)
		out[n.Name+" resolv.conf"] = string(resolv)
		raw, err := Env.Target.Exec(ctx, n.Name, nil, "iptables-save", "-t", "raw")
		require.NoError(t, err)
		out[n.Name+" iptables raw"] = withoutComments(string(raw))
	}
	return out
}

// withoutComments drops iptables-save's comment lines (they carry the time
// of the dump).
func withoutComments(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
