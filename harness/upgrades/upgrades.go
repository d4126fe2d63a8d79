// Package upgrades finds, on a timeline, the node-pool upgrades nobody
// announced: an AKS auto-upgrade, a planned maintenance window, a Fleet
// update run, a colleague's `az aks nodepool upgrade`. It reads only the
// node changes the observer recorded (nodes added, cordoned, uncordoned,
// deleted, Ready or not, their kubelet's version changed), groups them by
// pool into runs of changes that end with a quiet spell, and says what each
// run was (a node-image or Kubernetes upgrade, nodes replaced or drained, a
// scale-up) and whether it finished. `rehearse watch` judges each one as a
// rehearsal of its own.
package upgrades

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/nodeinfo"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Defaults of Options.
const (
	// DefaultQuiet is how long a pool must see no node change, with every
	// node Ready and none cordoned, for its upgrade to count as finished.
	// It outlasts the pause between two nodes of an AKS upgrade (a drained
	// node is deleted, its replacement joins within a minute).
	DefaultQuiet = time.Minute
	// DefaultStuck ends an upgrade that leaves a node cordoned or NotReady
	// (an undrainable node quarantined by AKS, a node that never came
	// back): after this long without a change it is judged as it stands.
	// It outlasts AKS's longest node soak (30 minutes).
	DefaultStuck = 35 * time.Minute
)

// Options tune what counts as the end of an upgrade.
type Options struct {
	Quiet time.Duration // DefaultQuiet when zero
	Stuck time.Duration // DefaultStuck when zero
}

func (o Options) withDefaults() Options {
	if o.Quiet <= 0 {
		o.Quiet = DefaultQuiet
	}
	if o.Stuck <= 0 {
		o.Stuck = DefaultStuck
	}
	return o
}

// Upgrade is one run of node changes in one pool.
type Upgrade struct {
	Pool string
	// Start and LastChange are the offsets of its first and last node
	// change.
	Start, LastChange time.Duration
	// Finished: the pool then stayed quiet for Options.Quiet with every
	// node Ready and none cordoned, or for Options.Stuck whatever the
	// nodes' state (Left names the nodes still cordoned or NotReady).
	// Unfinished: the timeline ends (the watch stopped) before that.
	Finished bool
	Left     []string

	// The pool's nodes, by name, as they were before its first change and
	// as they are after its last.
	Before, After map[string]nodeinfo.Info
	// The nodes that joined, were cordoned, were deleted, had their
	// kubelet replaced in place.
	Added, Cordoned, Removed, Upgraded []string
	Changes                            int // node events in it
}

// Kind says what the upgrade was, from what changed.
func (u *Upgrade) Kind() string {
	before, after := u.set(u.Before, kubelet), u.set(u.After, kubelet)
	switch {
	case len(u.Upgraded) > 0 || (len(after) > 0 && !slices.Equal(before, after)):
		return "Kubernetes upgrade"
	case !slices.Equal(u.set(u.Before, image), u.set(u.After, image)):
		return "node-image upgrade"
	case len(u.Removed) > 0 && len(u.Added) > 0:
		return "nodes replaced"
	case len(u.Cordoned) > 0 || len(u.Removed) > 0:
		return "nodes drained or removed"
	case len(u.Added) > 0:
		return "scale-up"
	}
	return "node readiness changes"
}

// Disruptive says whether the upgrade may have moved the app's pods: a
// node was cordoned, deleted or had its kubelet replaced. A scale-up alone,
// or a node that went NotReady and came back, is not judged as an upgrade.
func (u *Upgrade) Disruptive() bool {
	return len(u.Cordoned) > 0 || len(u.Removed) > 0 || len(u.Upgraded) > 0
}

// Duration is from the first change to the last.
func (u *Upgrade) Duration() time.Duration { return u.LastChange - u.Start }

// String says what happened in one line.
func (u *Upgrade) String() string {
	var parts []string
	for _, c := range []struct {
		n    []string
		verb string
	}{{u.Added, "added"}, {u.Cordoned, "cordoned"}, {u.Removed, "removed"}, {u.Upgraded, "kubelet replaced"}} {
		if len(c.n) > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", len(c.n), c.verb))
		}
	}
	s := fmt.Sprintf("pool %s: %s (%s nodes), %s", u.Pool, u.Kind(), strings.Join(parts, ", "), u.Duration().Round(time.Second))
	for _, f := range []struct {
		what string
		get  func(nodeinfo.Info) string
	}{{"kubelet", kubelet}, {"image", image}} {
		b, a := u.set(u.Before, f.get), u.set(u.After, f.get)
		if len(a) > 0 && !slices.Equal(b, a) {
			s += fmt.Sprintf("; %s %s -> %s", f.what, strings.Join(b, "+"), strings.Join(a, "+"))
		}
	}
	if !u.Finished {
		s += "; not finished"
	} else if len(u.Left) > 0 {
		s += "; left cordoned or NotReady: " + strings.Join(u.Left, ", ")
	}
	return s
}

func kubelet(i nodeinfo.Info) string { return i.Kubelet }
func image(i nodeinfo.Info) string   { return i.Image }

// set is the distinct values of one field over the nodes, sorted.
func (u *Upgrade) set(nodes map[string]nodeinfo.Info, get func(nodeinfo.Info) string) []string {
	var out []string
	for _, i := range nodes {
		if v := get(i); v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

// node is what the events said of a node so far.
type node struct {
	info            nodeinfo.Info
	ready, cordoned bool
}

// Find reads the node events of a timeline (sorted by offset, as in a
// Snapshot) up to now, the timeline's current offset, and returns the
// upgrades in the order they started. The last of a pool is unfinished
// when the pool has not been quiet long enough by now.
func Find(events []timeline.Event, now time.Duration, o Options) []*Upgrade {
	o = o.withDefaults()
	f := finder{o: o, nodes: map[string]*node{}, open: map[string]*Upgrade{}}
	for i := range events {
		e := &events[i]
		if !nodeEvent(e.Kind) {
			continue
		}
		f.closeQuiet(e.Offset)
		f.apply(e)
	}
	f.closeQuiet(now)
	for _, u := range f.open {
		f.done = append(f.done, u)
	}
	sort.SliceStable(f.done, func(i, j int) bool { return f.done[i].Start < f.done[j].Start })
	return f.done
}

func nodeEvent(k timeline.EventKind) bool {
	switch k {
	case timeline.EvNodeAdded, timeline.EvNodeCordoned, timeline.EvNodeUncordoned, timeline.EvNodeDeleted,
		timeline.EvNodeReady, timeline.EvNodeNotReady, timeline.EvNodeVersionChanged:
		return true
	}
	return false
}

type finder struct {
	o     Options
	nodes map[string]*node
	open  map[string]*Upgrade // by pool
	done  []*Upgrade
}

// pool is the pool a node belongs to ("" when the events never said).
func (f *finder) pool(name string) string {
	if n := f.nodes[name]; n != nil {
		return n.info.Pool
	}
	return ""
}

// closeQuiet finishes the open upgrades whose pool has been quiet long
// enough by at.
func (f *finder) closeQuiet(at time.Duration) {
	for _, pool := range slices.Sorted(maps.Keys(f.open)) {
		u := f.open[pool]
		left := f.left(pool)
		quiet := at - u.LastChange
		if (quiet >= f.o.Quiet && len(left) == 0) || quiet >= f.o.Stuck {
			u.Finished, u.Left = true, left
			u.After = f.poolNodes(pool)
			f.done = append(f.done, u)
			delete(f.open, pool)
		}
	}
}

// left is the pool's nodes that are cordoned or not Ready.
func (f *finder) left(pool string) []string {
	var out []string
	for name, n := range f.nodes {
		if n.info.Pool == pool && (n.cordoned || !n.ready) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func (f *finder) poolNodes(pool string) map[string]nodeinfo.Info {
	out := map[string]nodeinfo.Info{}
	for name, n := range f.nodes {
		if n.info.Pool == pool {
			out[name] = n.info
		}
	}
	return out
}

func (f *finder) apply(e *timeline.Event) {
	if e.Initial() {
		// The state found at the start: no change.
		n := f.node(e.Node)
		if i, ok := nodeinfo.Parse(e.Detail); ok {
			n.info = i
		}
		switch e.Kind {
		case timeline.EvNodeReady:
			n.ready = true
		case timeline.EvNodeCordoned:
			n.cordoned = true
		}
		return
	}
	pool := f.pool(e.Node)
	if e.Kind == timeline.EvNodeAdded {
		if i, ok := nodeinfo.Parse(e.Detail); ok {
			pool = i.Pool
		}
	}
	u := f.open[pool]
	if u == nil {
		if !starts(e.Kind) {
			f.update(e)
			return
		}
		u = &Upgrade{Pool: pool, Start: e.Offset, Before: f.poolNodes(pool)}
		f.open[pool] = u
	}
	u.LastChange = e.Offset
	u.Changes++
	switch e.Kind {
	case timeline.EvNodeAdded:
		u.Added = appendOnce(u.Added, e.Node)
	case timeline.EvNodeCordoned:
		u.Cordoned = appendOnce(u.Cordoned, e.Node)
	case timeline.EvNodeDeleted:
		u.Removed = appendOnce(u.Removed, e.Node)
	case timeline.EvNodeVersionChanged:
		u.Upgraded = appendOnce(u.Upgraded, e.Node)
	}
	f.update(e)
}

// starts says whether a change begins an upgrade: a node that only went
// NotReady (or Ready again) is a node problem, not an upgrade, though it
// belongs to an upgrade already under way.
func starts(k timeline.EventKind) bool {
	switch k {
	case timeline.EvNodeAdded, timeline.EvNodeCordoned, timeline.EvNodeDeleted, timeline.EvNodeVersionChanged:
		return true
	}
	return false
}

// update keeps the node's state as the event leaves it.
func (f *finder) update(e *timeline.Event) {
	switch e.Kind {
	case timeline.EvNodeAdded:
		// A node re-added under the same name (reimaged in place) starts
		// afresh: not Ready until it says so.
		n := &node{}
		if i, ok := nodeinfo.Parse(e.Detail); ok {
			n.info = i
		}
		f.nodes[e.Node] = n
	case timeline.EvNodeDeleted:
		delete(f.nodes, e.Node)
	case timeline.EvNodeReady:
		f.node(e.Node).ready = true
	case timeline.EvNodeNotReady:
		f.node(e.Node).ready = false
	case timeline.EvNodeCordoned:
		f.node(e.Node).cordoned = true
	case timeline.EvNodeUncordoned:
		f.node(e.Node).cordoned = false
	case timeline.EvNodeVersionChanged:
		n := f.node(e.Node)
		if _, to, ok := strings.Cut(e.Detail, " -> "); ok {
			n.info.Kubelet = to
		}
	}
}

func (f *finder) node(name string) *node {
	n := f.nodes[name]
	if n == nil {
		n = &node{info: nodeinfo.Info{Name: name}}
		f.nodes[name] = n
	}
	return n
}

func appendOnce(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}
