package hostroute

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// recordVersion is bumped when the file's meaning changes, so an old
// program refuses a file it would misread instead of guessing.
const recordVersion = 1

// record is the journal of one cluster's host routes. It lists every route
// that may be installed: entries are written before the route is added and
// dropped after it is deleted.
type record struct {
	Version  int           `json:"version"`
	Cluster  string        `json:"cluster"`
	Protocol int           `json:"protocol"`
	Routes   []recordRoute `json:"routes"`
}

type recordRoute struct {
	Node    string    `json:"node"`
	CIDR    string    `json:"cidr"`
	Via     string    `json:"via"`
	AddedAt time.Time `json:"added_at"`
}

func (r recordRoute) nodeRoute() (NodeRoute, error) {
	_, cidr, err := net.ParseCIDR(r.CIDR)
	if err != nil {
		return NodeRoute{}, fmt.Errorf("route of node %q: bad cidr %q", r.Node, r.CIDR)
	}
	via := net.ParseIP(r.Via).To4()
	if via == nil {
		return NodeRoute{}, fmt.Errorf("route of node %q: bad via %q", r.Node, r.Via)
	}
	return NodeRoute{Node: r.Node, PodCIDR: cidr, Via: via}, nil
}

// clusterName keeps names usable as file names: kind cluster names are DNS
// labels, so nothing legitimate is refused.
var clusterName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func checkCluster(cluster string) error {
	if !clusterName.MatchString(cluster) {
		return fmt.Errorf("hostroute: cluster name %q is not a valid name (letters, digits, '.', '_', '-')", cluster)
	}
	return nil
}

const recordExt = ".json"

func recordPath(dir, cluster string) string { return filepath.Join(dir, cluster+recordExt) }

// readRecord returns the cluster's record, or an empty one when there is no
// file.
func readRecord(dir, cluster string) (*record, error) {
	path := recordPath(dir, cluster)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &record{Version: recordVersion, Cluster: cluster, Protocol: int(Protocol)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hostroute: %w", err)
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, corrupt(path, err)
	}
	if rec.Version != recordVersion {
		return nil, corrupt(path, fmt.Errorf("version %d, this program knows %d", rec.Version, recordVersion))
	}
	if rec.Cluster != cluster {
		return nil, corrupt(path, fmt.Errorf("it is for cluster %q", rec.Cluster))
	}
	for _, r := range rec.Routes {
		if _, err := r.nodeRoute(); err != nil {
			return nil, corrupt(path, err)
		}
	}
	return &rec, nil
}

// corrupt says what to do when a record cannot be trusted: its routes can
// still be found by their protocol number.
func corrupt(path string, err error) error {
	return fmt.Errorf("hostroute: record %s is unreadable (%v): list the routes it may describe with `ip route show proto %d`, delete those of this cluster with `ip route del <cidr> proto %d`, then remove the file",
		path, err, int(Protocol), int(Protocol))
}

// writeRecord replaces the cluster's file atomically, so a crash leaves the
// old journal or the new one, never half of one. An empty record removes the
// file: a cluster without routes has nothing to restore.
func writeRecord(dir string, rec *record) error {
	path := recordPath(dir, rec.Cluster)
	if len(rec.Routes) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("hostroute: %w", err)
		}
		return nil
	}
	sort.Slice(rec.Routes, func(i, j int) bool { return rec.Routes[i].CIDR < rec.Routes[j].CIDR })
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("hostroute: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("hostroute: %w", err)
	}
	// The temporary name starts with a dot so Recorded never takes it for a
	// cluster.
	f, err := os.CreateTemp(dir, "."+rec.Cluster+".*.tmp")
	if err != nil {
		return fmt.Errorf("hostroute: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		// The journal must be on disk before the route it announces exists.
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("hostroute: writing record %s: %w", path, err)
	}
	return nil
}

// recordedClusters lists the clusters that have a record file in dir.
func recordedClusters(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hostroute: %w", err)
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, recordExt) {
			continue
		}
		cluster := strings.TrimSuffix(name, recordExt)
		if checkCluster(cluster) != nil {
			continue
		}
		names = append(names, cluster)
	}
	sort.Strings(names)
	return names, nil
}
