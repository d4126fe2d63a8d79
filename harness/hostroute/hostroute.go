package hostroute

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"
)

// NodeRoute is the host route to one node's pods.
type NodeRoute struct {
	Node    string
	PodCIDR *net.IPNet // the Node's spec.podCIDR (IPv4)
	Via     net.IP     // the node's address on the kind network
}

func (r NodeRoute) String() string {
	return fmt.Sprintf("%s via %s (node %s)", r.PodCIDR, r.Via, r.Node)
}

// ErrConflict is wrapped by Sync's refusals: a pod CIDR overlaps something
// the host or another cluster uses, or a gateway is not on a network the
// host is attached to. Nothing was changed on the host.
var ErrConflict = errors.New("hostroute: host route refused")

// Option configures a Manager, Cleanup or Recorded.
type Option func(*options)

type options struct {
	dir string
	nl  Netlink
	now func() time.Time
}

// WithDir sets the directory of the record files (default
// DefaultDir()). Every process managing routes on one host must use the
// same directory, or they cannot see each other's routes as conflicts
// (the protocol mark still catches routes they installed).
func WithDir(dir string) Option { return func(o *options) { o.dir = dir } }

// WithNetlink replaces the host's netlink handle, for tests.
func WithNetlink(nl Netlink) Option { return func(o *options) { o.nl = nl } }

func newOptions(opts []Option) options {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.dir == "" {
		o.dir = DefaultDir()
	}
	if o.nl == nil {
		o.nl = defaultNetlink()
	}
	return o
}

// DefaultDir is where record files are kept: $REHEARSE_CACHE_DIR/hostroutes,
// else $XDG_CACHE_HOME/rehearse/hostroutes or ~/.cache/rehearse/hostroutes,
// the cache the rest of the harness uses. Under sudo that is root's cache,
// which is also where every later privileged run looks.
func DefaultDir() string {
	if d := os.Getenv("REHEARSE_CACHE_DIR"); d != "" {
		return filepath.Join(d, "hostroutes")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "rehearse", "hostroutes")
	}
	return filepath.Join(os.TempDir(), "rehearse-cache", "hostroutes")
}

// Manager keeps the host routes of one cluster. Its methods are safe for
// concurrent use, and processes coordinate through a lock on the record
// directory.
type Manager struct {
	cluster string
	o       options

	op sync.Mutex // one Sync or Remove at a time

	mu     sync.Mutex
	routes []NodeRoute
}

// New returns the manager of cluster's host routes. It changes nothing and
// reads nothing until Sync or Remove.
func New(cluster string, opts ...Option) *Manager {
	return &Manager{cluster: cluster, o: newOptions(opts)}
}

// Sync makes the host's routes for this cluster exactly want: routes that are
// missing or whose gateway changed are added or replaced, and routes this
// cluster's record holds for pod CIDRs no longer wanted are deleted. Routes
// are keyed by pod CIDR, as the kernel keys them, so a CIDR that moves to
// another node is replaced, not deleted.
//
// Every wanted route is checked first, and if any is refused (an overlap with
// the host's addresses or routes or with another cluster's, a gateway not on
// a directly connected network, not IPv4) Sync changes nothing and returns
// an error wrapping ErrConflict that names the CIDR, what it conflicts with
// and the fix. Each route is written to the record file before it is added,
// and taken out after it is deleted.
func (m *Manager) Sync(ctx context.Context, want []NodeRoute) error {
	return m.withRecord(ctx, func(own *record) error {
		m.setState(own)
		return m.sync(ctx, want, own)
	})
}

// sync is Sync with this cluster's record read and locked.
func (m *Manager) sync(ctx context.Context, want []NodeRoute, own *record) error {
	norm, err := normalizeAll(want)
	if err != nil {
		return err
	}
	host, err := m.lookHost()
	if err != nil {
		return err
	}
	if err := check(m.cluster, norm, own, host); err != nil {
		return err
	}

	installed := map[string]net.IP{} // our routes in the kernel, by CIDR
	for _, r := range host.routes {
		if r.Protocol == Protocol && r.Table == tableMain && r.Dst != nil {
			installed[r.Dst.String()] = r.Gw
		}
	}
	wanted := map[string]bool{}
	for _, w := range norm {
		wanted[w.PodCIDR.String()] = true
	}
	var errs []error
	interrupted := false
	for _, w := range norm {
		key := w.PodCIDR.String()
		if ctx.Err() != nil {
			interrupted = true
			break
		}
		prev, had := own.get(key)
		if gw, ok := installed[key]; ok && had && gw.Equal(w.Via) && prev.Via == w.Via.String() {
			if prev.Node != w.Node {
				// Same route, another node name (a node recreated with the
				// same CIDR and address): only the journal changes.
				prev.Node = w.Node
				own.put(prev)
				if err := writeRecord(m.o.dir, own); err != nil {
					errs = append(errs, err)
				}
			}
			continue
		}
		undo := func() {
			if had {
				own.put(prev)
			} else {
				own.del(key)
			}
		}
		own.put(recordRoute{Node: w.Node, CIDR: key, Via: w.Via.String(), AddedAt: m.o.now().UTC()})
		if err := writeRecord(m.o.dir, own); err != nil {
			// Without the journal entry the route must not be added, and
			// the next write would fail alike.
			undo()
			errs = append(errs, err)
			break
		}
		if err := m.o.nl.RouteReplace(ourRoute(w.PodCIDR, w.Via)); err != nil {
			errs = append(errs, fmt.Errorf("hostroute: ip route replace %s via %s proto %d (node %s): %w%s",
				key, w.Via, int(Protocol), w.Node, err, hint(err)))
			// Nothing was installed: the journal goes back to what it said.
			undo()
			if err := writeRecord(m.o.dir, own); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Stale routes go even if an add failed: they are wrong either way.
	for _, r := range append([]recordRoute(nil), own.Routes...) {
		if wanted[r.CIDR] {
			continue
		}
		if ctx.Err() != nil {
			interrupted = true
			break
		}
		if err := m.deleteRoute(own, r); err != nil {
			errs = append(errs, err)
		}
	}
	if interrupted {
		errs = append(errs, fmt.Errorf("hostroute: sync of cluster %s interrupted: %w", m.cluster, ctx.Err()))
	}
	m.setState(own)
	return errors.Join(errs...)
}

// Routes returns the routes of this cluster as of the last Sync or Remove:
// those its record holds, installed unless an error said otherwise.
func (m *Manager) Routes() []NodeRoute {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]NodeRoute, len(m.routes))
	copy(out, m.routes)
	return out
}

// Remove deletes every route recorded for this cluster, then the record
// file. A route already gone (a reboot, someone's `ip route del`) counts as
// deleted. Routes that could not be deleted stay in the record, so a later
// Remove or Cleanup retries them.
func (m *Manager) Remove(ctx context.Context) error {
	return m.withRecord(ctx, func(own *record) error {
		var errs []error
		for _, r := range append([]recordRoute(nil), own.Routes...) {
			if err := ctx.Err(); err != nil {
				errs = append(errs, err)
				break
			}
			if err := m.deleteRoute(own, r); err != nil {
				errs = append(errs, err)
			}
		}
		m.setState(own)
		return errors.Join(errs...)
	})
}

// withRecord runs fn with this cluster's record read, holding both this
// Manager's lock and the record directory's, which other processes (a
// second rehearsal, `rehearse restore`) take too.
func (m *Manager) withRecord(ctx context.Context, fn func(own *record) error) error {
	if err := checkCluster(m.cluster); err != nil {
		return err
	}
	m.op.Lock()
	defer m.op.Unlock()
	unlock, err := lockDir(ctx, m.o.dir)
	if err != nil {
		return err
	}
	defer unlock()
	own, err := readRecord(m.o.dir, m.cluster)
	if err != nil {
		return err
	}
	return fn(own)
}

// Cleanup deletes the routes recorded for cluster and its record file, from
// the file alone: for another process than the one that added them, after a
// crash, or when the cluster is deleted.
func Cleanup(cluster string, opts ...Option) error {
	return New(cluster, opts...).Remove(context.Background())
}

// Recorded lists the clusters that have a record file, that is routes that
// may still be installed, for `rehearse restore`.
func Recorded(opts ...Option) ([]string, error) {
	return recordedClusters(newOptions(opts).dir)
}

// deleteRoute deletes one recorded route and then drops it from the record.
func (m *Manager) deleteRoute(own *record, r recordRoute) error {
	nr, err := r.nodeRoute()
	if err != nil {
		return err
	}
	if err := m.o.nl.RouteDel(delRoute(nr.PodCIDR)); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("hostroute: ip route del %s proto %d (node %s): %w%s", r.CIDR, int(Protocol), r.Node, err, hint(err))
	}
	own.del(r.CIDR)
	return writeRecord(m.o.dir, own)
}

func (m *Manager) setState(rec *record) {
	var rs []NodeRoute
	for _, r := range rec.Routes {
		if nr, err := r.nodeRoute(); err == nil {
			rs = append(rs, nr)
		}
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Node != rs[j].Node {
			return rs[i].Node < rs[j].Node
		}
		return rs[i].PodCIDR.String() < rs[j].PodCIDR.String()
	})
	m.mu.Lock()
	m.routes = rs
	m.mu.Unlock()
}

func hint(err error) string {
	switch {
	case errors.Is(err, syscall.EPERM):
		return " (changing routes needs root or CAP_NET_ADMIN; see hostroute.Available)"
	case errors.Is(err, syscall.ENETUNREACH):
		return " (the gateway is not reachable on any link: is the node's Docker network still there?)"
	}
	return ""
}

func (rec *record) get(cidr string) (recordRoute, bool) {
	for _, r := range rec.Routes {
		if r.CIDR == cidr {
			return r, true
		}
	}
	return recordRoute{}, false
}

func (rec *record) put(r recordRoute) {
	for i := range rec.Routes {
		if rec.Routes[i].CIDR == r.CIDR {
			rec.Routes[i] = r
			return
		}
	}
	rec.Routes = append(rec.Routes, r)
}

func (rec *record) del(cidr string) {
	out := rec.Routes[:0]
	for _, r := range rec.Routes {
		if r.CIDR != cidr {
			out = append(out, r)
		}
	}
	rec.Routes = out
}
