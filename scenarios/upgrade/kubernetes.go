package upgrade

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/scenario"
	"github.com/kube-rehearse/rehearse/harness/target"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// KindKubernetes is the scenario kind of a Kubernetes minor (or patch)
// upgrade: the control plane first, in place, then the pool surged to
// nodes of the new version, as AKS does it.
const KindKubernetes = "kubernetes-upgrade"

// KubernetesScenario plans the upgrade of the control plane and the pool to
// version; o.Image is a node image of that version.
func KubernetesScenario(version string, o Options, nodes []target.Node) (scenario.Scenario, error) {
	var cp *target.Node
	for i := range nodes {
		if nodes[i].ControlPlane {
			cp = &nodes[i]
		}
	}
	if cp == nil {
		return scenario.Scenario{}, fmt.Errorf("the cluster has no control-plane node to upgrade")
	}
	if err := checkSkew(cp.Version, version); err != nil {
		return scenario.Scenario{}, err
	}
	pool, err := Scenario(KindKubernetes, o, nodes)
	if err != nil {
		return scenario.Scenario{}, err
	}
	pool.Settings = append([]scenario.Setting{{Name: "version", Value: cp.Version + " -> " + version}}, pool.Settings...)
	cpStep := scenario.Do(fmt.Sprintf("upgrade the control plane %s to %s in place", cp.Name, version),
		func(ctx context.Context, sc *scenario.Context) error {
			stop := probeAPI(ctx, sc)
			defer stop()
			began := time.Now()
			err := sc.Target.UpgradeControlPlane(ctx, version, o.Image, statusWriter{sc})
			if err == nil {
				sc.Statusf("control plane at %s after %s", version, time.Since(began).Round(time.Second))
			}
			return err
		})
	pool.Steps = append([]scenario.Step{cpStep}, pool.Steps...)
	return pool, nil
}

// checkSkew refuses what kubeadm refuses: a downgrade, or more than one
// minor version at once.
func checkSkew(from, to string) error {
	fm, ferr := minor(from)
	tm, terr := minor(to)
	if ferr != nil || terr != nil {
		return fmt.Errorf("versions %q -> %q: write them as v1.MINOR.PATCH", from, to)
	}
	switch {
	case tm < fm:
		return fmt.Errorf("the control plane runs %s: %s would be a downgrade, which kubeadm (and AKS) do not do", from, to)
	case tm > fm+1:
		return fmt.Errorf("the control plane runs %s: kubeadm (and AKS) upgrade one minor version at a time, so go to v1.%d first", from, fm+1)
	}
	return nil
}

func minor(v string) (int, error) {
	parts := strings.Split(strings.TrimPrefix(v, "v"), ".")
	if len(parts) < 2 || parts[0] != "1" {
		return 0, fmt.Errorf("version %q", v)
	}
	return strconv.Atoi(parts[1])
}

// statusWriter passes the upgrade tool's lines on as status lines, only
// those naming a phase ("[upgrade/...]"): kubeadm is verbose.
type statusWriter struct{ sc *scenario.Context }

func (w statusWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(string(p), "\n") {
		if strings.HasPrefix(l, "[upgrade") {
			w.sc.Statusf("%s", strings.TrimSpace(l))
		}
	}
	return len(p), nil
}

// probeAPI asks the API server's readiness endpoint every 250 ms until
// stop is called, and records each time it stops and starts answering.
func probeAPI(ctx context.Context, sc *scenario.Context) (stop func()) {
	rc := sc.Client.Discovery().RESTClient()
	if rc == nil { // a fake client: nothing to ask
		return func() {}
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		up := true
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			rctx, rcancel := context.WithTimeout(pctx, time.Second)
			err := rc.Get().AbsPath("/readyz").Do(rctx).Error()
			rcancel()
			if pctx.Err() != nil {
				return
			}
			switch {
			case err != nil && up:
				up = false
				record(sc, timeline.Event{Kind: timeline.EvAPIUnavailable, Detail: err.Error()})
			case err == nil && !up:
				up = true
				record(sc, timeline.Event{Kind: timeline.EvAPIAvailable})
			}
			select {
			case <-pctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
