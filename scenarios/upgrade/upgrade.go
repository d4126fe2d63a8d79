// Package upgrade rehearses AKS's rolling node-pool upgrade on any target
// that can add and remove nodes (kind): surge nodes are added from the new
// node image, then batch after batch old nodes are cordoned and drained
// (evictions honour PodDisruptionBudgets, one deadline per node), left to
// soak, and reimaged in place (kind: the node container is replaced by one
// of the new image, under the same name), each reimaged node serving as a
// buffer for the next batch; at the end the surge nodes are removed. A node
// that could not be drained is handled as AKS's undrainableNodeBehavior
// says (Schedule or Cordon).
//
// Every change is journaled before it is made: a surge node is removed, a
// cordon undone, a quarantine label removed, and a node caught between its
// removal and its reimage is brought back, by the rehearsal's revert or by
// `rehearse restore` after a kill. A completed upgrade is not rolled back
// (AKS cannot either): its nodes stay on the new image.
package upgrade

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kube-rehearse/rehearse/harness/drain"
	"github.com/kube-rehearse/rehearse/harness/journal"
	"github.com/kube-rehearse/rehearse/harness/scenario"
	"github.com/kube-rehearse/rehearse/harness/target"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// KindNodeImage is the scenario kind of a node-image upgrade: the same
// Kubernetes version, a new node image.
const KindNodeImage = "node-image-upgrade"

// SurgeLabel marks the nodes an upgrade added as surge nodes.
const SurgeLabel = "rehearse.io/surge-node"

// DefaultPool is the pool upgraded when none is named (kind's workers).
const DefaultPool = "workers"

// Options describe one pool upgrade.
type Options struct {
	Pool     string // the pool whose nodes are upgraded (DefaultPool when empty)
	Image    string // the node image the pool moves to
	Settings Settings
}

// Scenario plans the upgrade of the pool's nodes among nodes (the target's
// nodes now) to o.Image. Nodes that already run it are left alone, as AKS
// does.
func Scenario(kind string, o Options, nodes []target.Node) (scenario.Scenario, error) {
	if o.Pool == "" {
		o.Pool = DefaultPool
	}
	o.Settings = o.Settings.WithDefaults()
	if err := o.Settings.Validate(); err != nil {
		return scenario.Scenario{}, err
	}
	if o.Image == "" {
		return scenario.Scenario{}, errors.New("no node image to upgrade to: set image=IMAGE")
	}
	var old []target.Node
	var inPool int
	for _, n := range nodes {
		if n.ControlPlane || n.Pool != o.Pool {
			continue
		}
		inPool++
		if n.Image != o.Image {
			old = append(old, n)
		}
	}
	if inPool == 0 {
		return scenario.Scenario{}, fmt.Errorf("pool %q has no node to upgrade", o.Pool)
	}
	if len(old) == 0 {
		return scenario.Scenario{}, fmt.Errorf("every node of pool %q already runs image %s: nothing to upgrade", o.Pool, o.Image)
	}
	sort.Slice(old, func(i, j int) bool { return old[i].Name < old[j].Name })
	u := &run{o: o, old: old, surge: surgeNames(nodes, o.Settings.Surge(len(old)))}
	n := len(old)
	st := o.Settings
	return scenario.Scenario{
		Kind: kind,
		Settings: []scenario.Setting{
			{Name: "pool", Value: fmt.Sprintf("%s (%d nodes to upgrade)", o.Pool, n)},
			{Name: "image", Value: o.Image},
			{Name: "maxSurge", Value: fmt.Sprintf("%s (%d nodes)", st.MaxSurge, st.Surge(n))},
			{Name: "maxUnavailable", Value: fmt.Sprintf("%s (%d nodes)", st.MaxUnavailable, st.Unavailable(n))},
			{Name: "drainTimeoutInMinutes", Value: fmt.Sprint(st.DrainTimeoutInMinutes)},
			{Name: "nodeSoakDurationInMinutes", Value: fmt.Sprint(st.NodeSoakDurationInMinutes)},
			{Name: "undrainableNodeBehavior", Value: st.UndrainableNodeBehavior},
		},
		Steps: []scenario.Step{
			scenario.Do(fmt.Sprintf("add %s from image %s", plural(len(u.surge), "surge node", "surge nodes"), o.Image), u.addSurge),
			scenario.Do(fmt.Sprintf("upgrade %s in batches of %d", plural(n, "node", "nodes"), st.BatchSize(n)), u.upgradeNodes),
			scenario.Do("remove the surge nodes", u.removeSurge),
		},
		Checks: Checks,
	}, nil
}

// Checks judge an upgrade: what clients saw, the drains, the upgrade's own
// figures, and the cgroup audit (a node image may change the cgroup
// version under the app, as AKS's did with Kubernetes 1.25).
var Checks = []string{"load", "baseline", "observation", "steps", "drain", "upgrade",
	"error-rate", "longest-outage", "ready-endpoints", "readiness", "graceful-shutdown", "cgroup"}

// run is one upgrade's state, shared by its steps.
type run struct {
	o     Options
	old   []target.Node
	surge []string // surge node names, chosen before they are journaled

	mu       sync.Mutex
	added    []string          // surge nodes that joined
	blocked  []blockedNode     // nodes whose drain did not finish
	retained map[string]string // Cordon: blocked node -> the surge node kept for it
	canceled []string          // nodes never reached: no surge node left for them
	upgraded []string          // nodes reimaged
	drains   map[string]drain.Result
}

type blockedNode struct {
	node string
	err  error
}

// surgeNames picks n node names that are not taken: the cluster's prefix
// (kind names nodes "<cluster>-control-plane", "<cluster>-worker2") and
// "-surge<N>".
func surgeNames(nodes []target.Node, n int) []string {
	prefix := "surge"
	taken := map[string]bool{}
	for _, nd := range nodes {
		taken[nd.Name] = true
		if p, ok := strings.CutSuffix(nd.Name, "-control-plane"); ok {
			prefix = p + "-surge"
		}
	}
	var out []string
	for i := 1; len(out) < n; i++ {
		name := fmt.Sprintf("%s%d", prefix, i)
		if !taken[name] {
			out = append(out, name)
		}
	}
	return out
}

// addSurge adds the surge nodes at once, as AKS provisions them together.
func (u *run) addSurge(ctx context.Context, sc *scenario.Context) error {
	return parallel(u.surge, func(name string) error {
		what := fmt.Sprintf("add surge node %s from image %s", name, u.o.Image)
		err := sc.Change(ctx, what, RemoveNode(name), func(ctx context.Context) error {
			return addNode(ctx, sc, target.NodeSpec{Name: name, Pool: u.o.Pool, Image: u.o.Image,
				Labels: map[string]string{SurgeLabel: "true"}}, "surge node")
		})
		if err == nil {
			u.mu.Lock()
			u.added = append(u.added, name)
			u.mu.Unlock()
		}
		return err
	})
}

// upgradeNodes drains and reimages the old nodes, batch by batch. A batch
// is as large as the buffer nodes (the surge nodes, whose place each
// reimaged node takes for the next batch) plus maxUnavailable; a node kept
// cordoned (Cordon) holds its surge node, so later batches shrink, and the
// upgrade is canceled when nothing is left to drain into.
func (u *run) upgradeNodes(ctx context.Context, sc *scenario.Context) error {
	st := u.o.Settings
	buffers := len(u.added)
	unavailable := st.Unavailable(len(u.old))
	remaining := append([]target.Node(nil), u.old...)
	for batch := 1; len(remaining) > 0; batch++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		size := min(buffers+unavailable, len(remaining))
		if size == 0 {
			for _, n := range remaining {
				u.canceled = append(u.canceled, n.Name)
			}
			sc.Statusf("no surge node left to drain into: %s not upgraded (upgrade canceled)", strings.Join(u.canceled, ", "))
			break
		}
		nodes := remaining[:size]
		remaining = remaining[size:]
		kept, err := u.batch(ctx, sc, fmt.Sprintf("batch %d", batch), nodes)
		if err != nil {
			return err
		}
		buffers -= kept
	}
	return nil
}

// batch cordons and drains nodes at once, deals with those that could not
// be drained, soaks, and reimages the others. kept is how many surge nodes
// the batch's blocked nodes hold (Cordon).
func (u *run) batch(ctx context.Context, sc *scenario.Context, name string, nodes []target.Node) (kept int, err error) {
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
	}
	record(sc, timeline.Event{Kind: timeline.EvBatchStarted, Name: name, Detail: strings.Join(names, ", ")})
	sc.Statusf("%s: %s", name, strings.Join(names, ", "))
	var errs []error
	defer func() {
		ev := timeline.Event{Kind: timeline.EvBatchFinished, Name: name}
		if err != nil {
			ev.Detail = err.Error()
		} else if len(errs) > 0 {
			ev.Detail = errors.Join(errs...).Error()
		}
		record(sc, ev)
	}()

	results := make([]drain.Result, len(nodes))
	err = parallelIdx(len(nodes), func(i int) error {
		n := nodes[i].Name
		if err := sc.Change(ctx, "cordon node "+n, journal.Uncordon(n), func(ctx context.Context) error {
			return drain.Cordon(ctx, sc.Client, n, true)
		}); err != nil {
			return err
		}
		results[i] = drain.Node(ctx, sc.Client, n, u.drainOptions(), sc.Timeline)
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var drained []target.Node
	for i, r := range results {
		u.mu.Lock()
		if u.drains == nil {
			u.drains = map[string]drain.Result{}
		}
		u.drains[r.Node] = r
		u.mu.Unlock()
		if r.Err == nil {
			sc.Statusf("node %s drained in %s (%d pods evicted, %d evictions refused)", r.Node, r.Took().Round(time.Second), len(r.Evicted), len(r.Refusals))
			drained = append(drained, nodes[i])
			continue
		}
		sc.Statusf("node %s could not be drained: %v", r.Node, r.Err)
		u.blocked = append(u.blocked, blockedNode{node: r.Node, err: r.Err})
		errs = append(errs, r.Err)
		if err := u.undrainable(ctx, sc, r.Node); err != nil {
			return kept, err
		}
		if u.o.Settings.UndrainableNodeBehavior == Cordon {
			kept++
		}
	}
	if soak := u.o.Settings.Soak(); soak > 0 && len(drained) > 0 {
		sc.Statusf("soaking for %s", soak)
		select {
		case <-ctx.Done():
			return kept, ctx.Err()
		case <-time.After(soak):
		}
	}
	err = parallelIdx(len(drained), func(i int) error { return u.reimage(ctx, sc, drained[i]) })
	return kept, err
}

// undrainable applies undrainableNodeBehavior to a node whose drain did
// not finish.
func (u *run) undrainable(ctx context.Context, sc *scenario.Context, node string) error {
	if u.o.Settings.UndrainableNodeBehavior == Schedule {
		sc.Statusf("node %s made schedulable again, not upgraded (undrainableNodeBehavior Schedule)", node)
		return drain.Cordon(ctx, sc.Client, node, false)
	}
	surge := ""
	u.mu.Lock()
	if u.retained == nil {
		u.retained = map[string]string{}
	}
	taken := map[string]bool{}
	for _, s := range u.retained {
		taken[s] = true
	}
	joined := map[string]bool{}
	for _, s := range u.added {
		joined[s] = true
	}
	for _, s := range u.surge { // in name order: the same node every run
		if joined[s] && !taken[s] {
			surge = s
			break
		}
	}
	u.retained[node] = surge
	u.mu.Unlock()
	sc.Statusf("node %s stays cordoned and quarantined, surge node %s kept in its place (undrainableNodeBehavior Cordon)", node, orNone(surge))
	what := fmt.Sprintf("label node %s %s=Quarantined", node, QuarantineLabel)
	return sc.Change(ctx, what, journal.RemoveNodeLabel(node, QuarantineLabel), func(ctx context.Context) error {
		return labelNode(ctx, sc, node, QuarantineLabel, "Quarantined")
	})
}

// reimage replaces a drained node by one of the new image under the same
// name. Its journal entry brings the node back (from its old image) if the
// run stops between removal and join.
func (u *run) reimage(ctx context.Context, sc *scenario.Context, n target.Node) error {
	what := fmt.Sprintf("reimage node %s: image %s -> %s", n.Name, n.Image, u.o.Image)
	err := sc.Change(ctx, what, RestoreNode(n.Name, n.Pool, n.Image), func(ctx context.Context) error {
		if err := sc.Target.RemoveNode(ctx, n.Name); err != nil {
			return err
		}
		return addNode(ctx, sc, target.NodeSpec{Name: n.Name, Pool: n.Pool, Image: u.o.Image}, "reimage")
	})
	if err == nil {
		u.mu.Lock()
		u.upgraded = append(u.upgraded, n.Name)
		u.mu.Unlock()
	}
	return err
}

// removeSurge removes the surge nodes (but the ones Cordon keeps) and says
// whether the upgrade failed.
func (u *run) removeSurge(ctx context.Context, sc *scenario.Context) error {
	keep := map[string]bool{}
	for _, s := range u.retained {
		keep[s] = true
	}
	var remove []string
	sort.Strings(u.added)
	for _, s := range u.added {
		if !keep[s] {
			remove = append(remove, s)
		}
	}
	err := parallel(remove, func(name string) error {
		// A surge node holds pods by now: drain it like any node first.
		_ = drain.Cordon(ctx, sc.Client, name, true)
		r := drain.Node(ctx, sc.Client, name, u.drainOptions(), sc.Timeline)
		if r.Err != nil {
			return fmt.Errorf("surge node %s: %w", name, r.Err)
		}
		record(sc, timeline.Event{Kind: timeline.EvNote, Node: name, Detail: "removing surge node " + name})
		return sc.Target.RemoveNode(ctx, name)
	})
	if err != nil {
		return err
	}
	return u.outcome()
}

// outcome is the upgrade's failure, as AKS would report it, or nil.
func (u *run) outcome() error {
	if len(u.blocked) == 0 && len(u.canceled) == 0 {
		return nil
	}
	var b strings.Builder
	state := "failed"
	if len(u.canceled) > 0 {
		state = "canceled"
	}
	fmt.Fprintf(&b, "upgrade %s: %d of %d nodes upgraded", state, len(u.upgraded), len(u.old))
	for _, bn := range u.blocked {
		switch u.o.Settings.UndrainableNodeBehavior {
		case Schedule:
			fmt.Fprintf(&b, "; node %s was made schedulable again and not upgraded (undrainableNodeBehavior Schedule): %v", bn.node, bn.err)
		default:
			fmt.Fprintf(&b, "; node %s stays cordoned, labelled %s=Quarantined, surge node %s kept (undrainableNodeBehavior Cordon): %v",
				bn.node, QuarantineLabel, orNone(u.retained[bn.node]), bn.err)
		}
	}
	if len(u.canceled) > 0 {
		fmt.Fprintf(&b, "; not reached: %s (no surge node left to drain into)", strings.Join(u.canceled, ", "))
	}
	return errors.New(b.String())
}

// retryDelay is the wait between refused evictions (kubectl's); unit tests
// shorten it.
var retryDelay = drain.DefaultRetryDelay

func (u *run) drainOptions() drain.Options {
	return drain.Options{Timeout: u.o.Settings.DrainTimeout(), RetryDelay: retryDelay}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// addNode asks the target for a node, on the timeline first.
func addNode(ctx context.Context, sc *scenario.Context, spec target.NodeSpec, why string) error {
	record(sc, timeline.Event{Kind: timeline.EvNodeRequested, Node: spec.Name, Detail: why + " from image " + spec.Image})
	_, err := sc.Target.AddNode(ctx, spec)
	return err
}

func record(sc *scenario.Context, e timeline.Event) {
	if sc.Timeline == nil {
		return
	}
	e.Offset = sc.Timeline.Now()
	sc.Timeline.AddEvent(e)
}

// parallel runs fn for each item at once and joins their errors.
func parallel(items []string, fn func(string) error) error {
	return parallelIdx(len(items), func(i int) error { return fn(items[i]) })
}

func parallelIdx(n int, fn func(int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
