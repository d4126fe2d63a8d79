// Package safety decides whether a rehearsal may disrupt a cluster. A
// cluster the harness created is its own to disrupt. Any other cluster
// (staging, a cluster reached by kubeconfig) is disrupted only when the
// user named it on an allow-list, by its kubeconfig context, its API
// server's address, or both: a context name alone can come to point at
// another cluster when a kubeconfig is regenerated, so an entry can pin
// the server too. Reading a cluster and undoing what earlier rehearsals
// journaled are always allowed.
package safety

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"
)

// EnvVar holds allow-list entries, separated by commas or spaces, for
// when a flag is not the way in (CI jobs, suites).
const EnvVar = "REHEARSE_ALLOW_CLUSTERS"

// ErrNotAllowed is wrapped by every refusal.
var ErrNotAllowed = errors.New("not allowed to disrupt this cluster")

// Cluster is what an allow-list is matched against.
type Cluster struct {
	Context string // the kubeconfig context
	Server  string // the API server's address (https://host:port)
	Owned   bool   // the harness created it
}

// entry is one allow-list entry: a context name (a glob: "staging-*"), a
// server address, or both ("CONTEXT@SERVER").
type entry struct {
	raw     string
	context string
	server  string
}

// AllowList is the clusters the user allowed to be disrupted.
type AllowList struct{ entries []entry }

// Parse reads allow-list entries (flags, then the environment's). Every bad
// entry is named, with the forms that work.
func Parse(values ...string) (AllowList, error) {
	var a AllowList
	var errs []error
	for _, v := range values {
		for _, raw := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
			e, err := parseEntry(raw)
			if err != nil {
				errs = append(errs, fmt.Errorf("allow-list entry %q: %v: write a context name (globs allowed: staging-*), "+
					"an API server address (https://host:port), or both (CONTEXT@https://host:port)", raw, err))
				continue
			}
			a.entries = append(a.entries, e)
		}
	}
	return a, errors.Join(errs...)
}

// FromEnv is Parse of $REHEARSE_ALLOW_CLUSTERS.
func FromEnv() (AllowList, error) { return Parse(os.Getenv(EnvVar)) }

// Merge is both lists' entries.
func (a AllowList) Merge(b AllowList) AllowList {
	return AllowList{entries: append(append([]entry(nil), a.entries...), b.entries...)}
}

// Len is how many entries the list has.
func (a AllowList) Len() int { return len(a.entries) }

func parseEntry(raw string) (entry, error) {
	e := entry{raw: raw}
	switch ctx, srv, both := strings.Cut(raw, "@"); {
	case both:
		e.context, e.server = ctx, srv
		if ctx == "" {
			return e, errors.New("no context before @")
		}
	case strings.Contains(raw, "://"):
		e.server = raw
	default:
		e.context = raw
	}
	if e.context != "" {
		if _, err := path.Match(e.context, ""); err != nil {
			return e, fmt.Errorf("bad glob: %v", err)
		}
	}
	if e.server != "" {
		n, err := normalServer(e.server)
		if err != nil {
			return e, err
		}
		e.server = n
	}
	return e, nil
}

// normalServer is an API server address as compared: scheme and host in
// lower case, the default port made explicit, no trailing slash.
func normalServer(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", errors.New("not a server address")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[strings.ToLower(u.Scheme)]
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return strings.ToLower(u.Scheme) + "://" + host + ":" + port + strings.TrimRight(u.Path, "/"), nil
}

// Permits says whether the list allows disrupting c.
func (a AllowList) Permits(c Cluster) bool {
	if c.Owned {
		return true
	}
	server, _ := normalServer(c.Server)
	for _, e := range a.entries {
		ctxOK := e.context == "" || matches(e.context, c.Context)
		srvOK := e.server == "" || (server != "" && e.server == server)
		if ctxOK && srvOK {
			return true
		}
	}
	return false
}

func matches(glob, name string) bool {
	ok, _ := path.Match(glob, name)
	return ok
}

// Check refuses, before anything is changed, the disruptions (what each
// would do to the cluster, in words) on a cluster the list does not permit.
// Nothing to disrupt is always allowed.
func (a AllowList) Check(c Cluster, disruptions []string) error {
	if len(disruptions) == 0 || a.Permits(c) {
		return nil
	}
	return fmt.Errorf("%w: context %s (API server %s) was not created by rehearse and is not on the allow-list, "+
		"and this rehearsal would %s. Nothing was changed. If this cluster is yours to disrupt, allow it: "+
		"--allow-cluster %s (or %s=%s; pin the server too with %s@%s)",
		ErrNotAllowed, c.Context, c.Server, strings.Join(disruptions, "; "),
		c.Context, EnvVar, c.Context, c.Context, c.Server)
}
