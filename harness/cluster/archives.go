package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
)

// imported remembers which archives (by content) each node imported, by
// the node container's ID: every rehearsal of a suite loads its app image,
// and importing it again into every node costs seconds each time. A node
// replaced by an upgrade is a new container, and an image the kubelet
// removed since is imported again (its names are checked in the node).
type imported struct {
	mu   sync.Mutex
	seen map[string]bool // container ID + " " + archive digest
}

func (im *imported) has(key string) bool {
	im.mu.Lock()
	defer im.mu.Unlock()
	return im.seen[key]
}

func (im *imported) add(key string) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if im.seen == nil {
		im.seen = map[string]bool{}
	}
	im.seen[key] = true
}

// LoadImageArchive imports a docker-archive into every node's containerd,
// except the nodes that imported the same archive before and still have
// its images.
func (c *Cluster) LoadImageArchive(ctx context.Context, archive string) error {
	digest, tags, err := archiveIdentity(archive)
	if err != nil {
		return err
	}
	nodes, err := c.kind.ListInternalNodes(c.cfg.Name)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		id, err := dockerOutput(ctx, "inspect", "--format", "{{.Id}}", n.String())
		if err != nil {
			return fmt.Errorf("inspecting node %s: %w", n.String(), err)
		}
		key := strings.TrimSpace(id) + " " + digest
		if c.imported.has(key) && nodeHasImages(ctx, n.String(), tags) {
			continue
		}
		f, err := os.Open(archive)
		if err != nil {
			return err
		}
		err = nodeutils.LoadImageArchive(vmAware(ctx, n), f)
		f.Close()
		if err != nil {
			return fmt.Errorf("loading %s into node %s: %w", archive, n.String(), err)
		}
		c.imported.add(key)
	}
	return nil
}

// archiveIdentity is the archive's content digest and the image names it
// carries.
func archiveIdentity(archive string) (digest string, tags []string, err error) {
	f, err := os.Open(archive)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", nil, fmt.Errorf("reading %s: %w", archive, err)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(archive) })
	if err != nil {
		return "", nil, fmt.Errorf("%s is not a docker-archive: %w", archive, err)
	}
	for _, d := range m {
		tags = append(tags, d.RepoTags...)
	}
	return hex.EncodeToString(h.Sum(nil)), tags, nil
}

// nodeHasImages reports whether the node's containerd lists every one of
// the names.
func nodeHasImages(ctx context.Context, node string, tags []string) bool {
	out, err := dockerOutput(ctx, ExecArgs(ctx, node, false, "ctr", "--namespace", "k8s.io", "images", "list", "--quiet")...)
	if err != nil {
		return false
	}
	return listsAll(strings.Fields(out), tags)
}

// listsAll reports whether containerd's image list names every tag (an
// image without a registry host is listed under docker.io).
func listsAll(have, tags []string) bool {
	for _, t := range tags {
		if !slices.Contains(have, t) && !slices.Contains(have, "docker.io/"+t) && !slices.Contains(have, "docker.io/library/"+t) {
			return false
		}
	}
	return true
}
