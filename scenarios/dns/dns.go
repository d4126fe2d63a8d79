// Package dns breaks name resolution in the ways upgrades and platform
// changes break it (catalogue class 6), each as a journaled scenario whose
// every change is undone byte for byte:
//
//   - coredns-outage: no CoreDNS pod answers (its Deployment scaled to 0);
//   - coredns-misconfig: the Corefile forwards to a dead upstream (names
//     outside the cluster stop resolving), or answers SERVFAIL for one zone
//     (the cluster's own names, say); CoreDNS's pods are replaced so the
//     change takes effect at once rather than at its next reload;
//   - dns-drop: DNS packets leaving the pods of chosen nodes are dropped
//     (a packet-filter rule in the node), as a security rule added by the
//     user or a node image's firewall would.
//
// The fourth way, a node image whose resolver configuration is wrong, is a
// node-image upgrade to such a variant (package upgrade).
package dns

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-rehearse/rehearse/harness/scenario"
)

// The scenario kinds.
const (
	KindOutage    = "coredns-outage"
	KindMisconfig = "coredns-misconfig"
	KindDrop      = "dns-drop"
)

// Where CoreDNS lives in a kubeadm cluster (kind, and AKS alike).
const (
	Namespace   = "kube-system"
	Deployment  = "coredns"
	ConfigMap   = "coredns"
	CorefileKey = "Corefile"
	podLabel    = "k8s-app=kube-dns"
	dnsService  = "kube-dns"
)

// Misconfiguration modes.
const (
	ModeDeadUpstream = "dead-upstream" // forward to an address nobody answers on
	ModeServfail     = "servfail"      // SERVFAIL for every name in one zone
)

// DeadUpstream is where a dead-upstream Corefile forwards: an address of
// TEST-NET-1 (RFC 5737), routed nowhere.
const DeadUpstream = "192.0.2.53"

// DefaultHold is how long a DNS fault lasts.
const DefaultHold = 20 * time.Second

// checks judge a DNS rehearsal: the dns check on top of the usual ones.
var checks = []string{"load", "baseline", "observation", "steps", "error-rate", "longest-outage", "ready-endpoints", "dns"}

// Outage scales CoreDNS to zero for hold.
func Outage(hold time.Duration) scenario.Scenario {
	return scenario.Scenario{
		Kind:     KindOutage,
		Settings: []scenario.Setting{{Name: "hold", Value: hold.String()}},
		Steps: []scenario.Step{
			scenario.Do("scale CoreDNS to 0 replicas", func(ctx context.Context, sc *scenario.Context) error {
				d, err := sc.Client.AppsV1().Deployments(Namespace).Get(ctx, Deployment, metav1.GetOptions{})
				if err != nil {
					return fmt.Errorf("finding CoreDNS: %w", err)
				}
				replicas := int32(1)
				if d.Spec.Replicas != nil {
					replicas = *d.Spec.Replicas
				}
				if replicas == 0 {
					return fmt.Errorf("CoreDNS is already scaled to 0: nothing to break (restore it first)")
				}
				what := fmt.Sprintf("scale %s/%s from %d to 0 replicas", Namespace, Deployment, replicas)
				return sc.Change(ctx, what, ScaleBack(Namespace, Deployment, replicas), func(ctx context.Context) error {
					return scale(ctx, sc.Client, Namespace, Deployment, 0)
				})
			}),
			waitNoReadyPods(),
			holdFor(hold),
		},
		Checks: checks,
	}
}

// Misconfig changes the Corefile (mode ModeDeadUpstream or ModeServfail for
// zone) and replaces the CoreDNS pods, then holds.
func Misconfig(mode, zone string, hold time.Duration) (scenario.Scenario, error) {
	set := []scenario.Setting{{Name: "mode", Value: mode}, {Name: "hold", Value: hold.String()}}
	switch mode {
	case ModeDeadUpstream:
	case ModeServfail:
		if zone == "" {
			return scenario.Scenario{}, fmt.Errorf("mode=servfail needs zone=NAME (e.g. zone=svc.cluster.local)")
		}
		set = append(set, scenario.Setting{Name: "zone", Value: zone})
	default:
		return scenario.Scenario{}, fmt.Errorf("mode=%q: use %s or %s", mode, ModeDeadUpstream, ModeServfail)
	}
	return scenario.Scenario{
		Kind:     KindMisconfig,
		Settings: set,
		Steps: []scenario.Step{
			scenario.Do("change the Corefile: "+describe(mode, zone), func(ctx context.Context, sc *scenario.Context) error {
				cm, err := sc.Client.CoreV1().ConfigMaps(Namespace).Get(ctx, ConfigMap, metav1.GetOptions{})
				if err != nil {
					return fmt.Errorf("reading CoreDNS's ConfigMap: %w", err)
				}
				orig, ok := cm.Data[CorefileKey]
				if !ok {
					return fmt.Errorf("ConfigMap %s/%s has no %s", Namespace, ConfigMap, CorefileKey)
				}
				broken, err := Break(orig, mode, zone)
				if err != nil {
					return err
				}
				return sc.Change(ctx, "Corefile: "+describe(mode, zone), RestoreCorefile(orig), func(ctx context.Context) error {
					return writeCorefile(ctx, sc.Client, broken)
				})
			}),
			scenario.Do("replace the CoreDNS pods so they load it", func(ctx context.Context, sc *scenario.Context) error {
				return replacePods(ctx, sc.Client)
			}),
			holdFor(hold),
		},
		Checks: checks,
	}, nil
}

func describe(mode, zone string) string {
	if mode == ModeServfail {
		return "SERVFAIL for " + zone
	}
	return "forward to the dead upstream " + DeadUpstream
}

// Break returns the Corefile with the fault of mode written in: every
// `forward` of the catch-all server block pointed at DeadUpstream, or a
// server block for zone answering SERVFAIL put before the others (the most
// specific zone wins in CoreDNS).
func Break(corefile, mode, zone string) (string, error) {
	switch mode {
	case ModeDeadUpstream:
		var out []string
		changed := false
		for _, line := range strings.Split(corefile, "\n") {
			trimmed := strings.TrimSpace(line)
			if strings.HasPrefix(trimmed, "forward . ") {
				indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
				rest := ""
				if i := strings.Index(trimmed, "{"); i >= 0 {
					rest = " " + trimmed[i:]
				}
				line, changed = indent+"forward . "+DeadUpstream+rest, true
			}
			out = append(out, line)
		}
		if !changed {
			return "", fmt.Errorf("the Corefile has no `forward . ...` line to point elsewhere")
		}
		return strings.Join(out, "\n"), nil
	case ModeServfail:
		block := fmt.Sprintf("%s:53 {\n    errors\n    template ANY ANY %s {\n        rcode SERVFAIL\n    }\n}\n", zone, zone)
		return block + corefile, nil
	}
	return "", fmt.Errorf("mode %q: use %s or %s", mode, ModeDeadUpstream, ModeServfail)
}

func holdFor(d time.Duration) scenario.Step {
	return scenario.Do("hold for "+d.String(), func(ctx context.Context, _ *scenario.Context) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	})
}

// waitNoReadyPods waits until no CoreDNS pod is ready, so the hold is all
// outage.
func waitNoReadyPods() scenario.Step {
	return scenario.Do("wait until no CoreDNS pod answers", func(ctx context.Context, sc *scenario.Context) error {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		for {
			pods, err := sc.Client.CoreV1().Pods(Namespace).List(ctx, metav1.ListOptions{LabelSelector: podLabel})
			if err == nil && readyPods(pods.Items) == 0 {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("CoreDNS pods still ready after a minute: %w", ctx.Err())
			case <-time.After(500 * time.Millisecond):
			}
		}
	})
}

func readyPods(pods []corev1.Pod) int {
	n := 0
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n
}
