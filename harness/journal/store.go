package journal

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Namespace holds every journal. Open creates it on first use; it is never
// deleted by this package, since a journal may be in it.
const Namespace = "rehearse-system"

// Labels on every journal ConfigMap (and the namespace): Leftovers lists
// journals by LabelJournal.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "rehearse"
	LabelJournal   = "rehearse.io/journal"
)

// Annotations of a journal ConfigMap. Each owner field is its own
// annotation, so that `kubectl describe` reads as plain text.
const (
	annRun          = "rehearse.io/run" // the run id as given: names are sanitised
	annOwnerHost    = "rehearse.io/owner-host"
	annOwnerBootID  = "rehearse.io/owner-boot-id"
	annOwnerPIDNS   = "rehearse.io/owner-pid-namespace"
	annOwnerPID     = "rehearse.io/owner-pid"
	annOwnerStarted = "rehearse.io/owner-started"
	annHeartbeat    = "rehearse.io/heartbeat"
	annClosed       = "rehearse.io/closed"
	// annNextSeq keeps entry numbers increasing after entries are removed,
	// so a number on a Node's marker never names two different changes.
	annNextSeq = "rehearse.io/next-seq"
	// annVersion is the harness version that writes the journal: the one
	// to run `rehearse restore` from when this build lacks an undo kind.
	annVersion = "rehearse.io/harness-version"
)

// NodeAnnotationPrefix starts the annotation that marks a Node changed by a
// run: journal.rehearse.io/<run> = entry numbers ("1,3").
const NodeAnnotationPrefix = "journal.rehearse.io/"

const entryPrefix = "entry-"

// maxRunLabel keeps "journal-<run>" a DNS label (63 characters), and the
// Node annotation's name part within its 63.
const maxRunLabel = 63 - len("journal-")

// ConfigMapName is the name of run's journal in Namespace.
func ConfigMapName(run string) string { return "journal-" + runLabel(run) }

// NodeAnnotation is the annotation key that marks Nodes changed by run.
func NodeAnnotation(run string) string { return NodeAnnotationPrefix + runLabel(run) }

// runLabel makes run a DNS label: lower case, [a-z0-9-], starting and
// ending alphanumeric. Run ids such as 20261123-115012-a1b2 pass unchanged;
// any other is cut and given a hash of the original, so that two runs that
// differ only in what sanitising removes do not share a journal.
func runLabel(run string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(run) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	l := strings.Trim(b.String(), "-")
	if l == run && len(l) <= maxRunLabel {
		return l
	}
	sum := sha256.Sum256([]byte(run))
	h := hex.EncodeToString(sum[:4])
	if len(l) > maxRunLabel-len(h)-1 {
		l = strings.TrimRight(l[:maxRunLabel-len(h)-1], "-")
	}
	if l == "" {
		return h
	}
	return l + "-" + h
}

func entryKey(seq int) string { return fmt.Sprintf("%s%04d", entryPrefix, seq) }

// stored is a journal ConfigMap decoded.
type stored struct {
	run       string
	owner     Owner
	heartbeat time.Time // or, lacking one, the creation time
	closed    time.Time
	version   string
	nextSeq   int
	entries   []storedEntry // by Seq, oldest first
}

// storedEntry is one data key; err says why it could not be read (a hand
// edit, a newer format), and then only Seq is known.
type storedEntry struct {
	key string
	Entry
	err error
}

func decode(cm *corev1.ConfigMap) stored {
	a := cm.Annotations
	s := stored{run: a[annRun], version: a[annVersion]}
	if s.run == "" {
		s.run = strings.TrimPrefix(cm.Name, "journal-")
	}
	s.owner.Host = a[annOwnerHost]
	s.owner.BootID = a[annOwnerBootID]
	s.owner.PIDNamespace = a[annOwnerPIDNS]
	s.owner.PID, _ = strconv.Atoi(a[annOwnerPID])
	s.owner.Started = parseTime(a[annOwnerStarted])
	s.heartbeat = parseTime(a[annHeartbeat])
	if s.heartbeat.IsZero() {
		s.heartbeat = cm.CreationTimestamp.Time
	}
	s.closed = parseTime(a[annClosed])
	s.nextSeq, _ = strconv.Atoi(a[annNextSeq])
	for k, v := range cm.Data {
		n, ok := strings.CutPrefix(k, entryPrefix)
		if !ok {
			continue
		}
		e := storedEntry{key: k}
		seq, err := strconv.Atoi(n)
		if err != nil {
			e.err = fmt.Errorf("data key %s is not entry-<number>", k)
		} else if err := json.Unmarshal([]byte(v), &e.Entry); err != nil {
			e.err = fmt.Errorf("data key %s is not an entry: %w", k, err)
		}
		// The key is what removal goes by: it wins over the stored number.
		e.Seq = seq
		if e.err != nil {
			e.Change = fmt.Sprintf("unreadable journal entry %s: %.200q", k, v)
		}
		s.entries = append(s.entries, e)
		if seq >= s.nextSeq {
			s.nextSeq = seq + 1
		}
	}
	if s.nextSeq < 1 {
		s.nextSeq = 1
	}
	sort.Slice(s.entries, func(i, j int) bool {
		if s.entries[i].Seq != s.entries[j].Seq {
			return s.entries[i].Seq < s.entries[j].Seq
		}
		return s.entries[i].key < s.entries[j].key
	})
	return s
}

func (s stored) plainEntries() []Entry {
	out := make([]Entry, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, e.Entry)
	}
	return out
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// newConfigMap is an empty journal for run, owned by owner.
func newConfigMap(run string, owner Owner, now time.Time) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:      ConfigMapName(run),
			Namespace: Namespace,
			Labels:    map[string]string{LabelManagedBy: ManagedBy, LabelJournal: "true"},
			Annotations: map[string]string{
				annRun:     run,
				annNextSeq: "1",
			},
		},
		Data: map[string]string{},
	}
	setOwner(cm, owner, now)
	return cm
}

// setOwner makes owner the journal's writer, with a fresh heartbeat.
func setOwner(cm *corev1.ConfigMap, owner Owner, now time.Time) {
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	a := cm.Annotations
	a[annOwnerHost] = owner.Host
	a[annOwnerBootID] = owner.BootID
	a[annOwnerPIDNS] = owner.PIDNamespace
	a[annOwnerPID] = strconv.Itoa(owner.PID)
	a[annOwnerStarted] = formatTime(owner.Started)
	a[annHeartbeat] = formatTime(now)
	a[annVersion] = harnessVersion()
	delete(a, annClosed)
}

const modulePath = "github.com/kube-rehearse/rehearse"

var (
	versionOnce sync.Once
	version     string
)

// harnessVersion is this build's version of the harness module: its module
// version when the harness is a dependency (a user's test module), the VCS
// revision when built from a checkout.
func harnessVersion() string {
	versionOnce.Do(func() {
		version = "(devel)"
		bi, ok := debug.ReadBuildInfo()
		if !ok {
			return
		}
		if bi.Main.Path != modulePath {
			for _, d := range bi.Deps {
				if d.Path == modulePath {
					if d.Replace != nil {
						d = d.Replace
					}
					if d.Version != "" {
						version = d.Version
					}
					return
				}
			}
		}
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			version = v
			return
		}
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			version = "(devel) " + rev + dirty
		}
	})
	return version
}
