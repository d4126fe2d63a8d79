package upgrade

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Undrainable node behaviours, AKS's names.
const (
	// Schedule: a node whose drain did not finish is made schedulable
	// again and not upgraded; every surge node is removed; the upgrade fails.
	Schedule = "Schedule"
	// Cordon: a node whose drain did not finish stays cordoned, labelled
	// QuarantineLabel=Quarantined, and keeps one surge node in its place;
	// the other surge nodes are removed; the upgrade fails (or is canceled
	// when no surge node was left to take a blocked node's place).
	Cordon = "Cordon"
)

// QuarantineLabel marks a node AKS could not drain (with Cordon).
const QuarantineLabel = "kubernetes.azure.com/upgrade-status"

// Settings are AKS's agent-pool upgrade settings, with AKS's names, units
// and defaults.
type Settings struct {
	// MaxSurge is how many nodes are added for the upgrade: a count ("1")
	// or a percentage of the pool ("33%"), rounded up. Default "10%".
	MaxSurge string
	// MaxUnavailable is how many old nodes may be taken down beyond the
	// surge: a count or a percentage. Default "0".
	MaxUnavailable string
	// DrainTimeoutInMinutes bounds each node's drain. Default 30.
	DrainTimeoutInMinutes int
	// NodeSoakDurationInMinutes is the wait after a batch is drained before
	// its nodes are reimaged. Default 0.
	NodeSoakDurationInMinutes int
	// UndrainableNodeBehavior is Schedule (default) or Cordon.
	UndrainableNodeBehavior string
}

// Defaults are AKS's defaults.
func Defaults() Settings {
	return Settings{MaxSurge: "10%", MaxUnavailable: "0", DrainTimeoutInMinutes: 30, UndrainableNodeBehavior: Schedule}
}

// WithDefaults fills what is unset with AKS's defaults.
func (s Settings) WithDefaults() Settings {
	d := Defaults()
	if s.MaxSurge == "" {
		s.MaxSurge = d.MaxSurge
	}
	if s.MaxUnavailable == "" {
		s.MaxUnavailable = d.MaxUnavailable
	}
	if s.DrainTimeoutInMinutes == 0 {
		s.DrainTimeoutInMinutes = d.DrainTimeoutInMinutes
	}
	if s.UndrainableNodeBehavior == "" {
		s.UndrainableNodeBehavior = d.UndrainableNodeBehavior
	}
	return s
}

// Validate reports every bad setting at once, with the range AKS accepts.
func (s Settings) Validate() error {
	s = s.WithDefaults()
	var errs []error
	if _, err := parseCount(s.MaxSurge, 1); err != nil {
		errs = append(errs, fmt.Errorf("maxSurge %w", err))
	}
	if _, err := parseCount(s.MaxUnavailable, 1); err != nil {
		errs = append(errs, fmt.Errorf("maxUnavailable %w", err))
	}
	if zero(s.MaxSurge) && zero(s.MaxUnavailable) {
		errs = append(errs, errors.New("maxSurge and maxUnavailable are both 0: nothing could be upgraded; set maxSurge to at least 1 (or maxUnavailable)"))
	}
	if s.DrainTimeoutInMinutes < 1 || s.DrainTimeoutInMinutes > 1440 {
		errs = append(errs, fmt.Errorf("drainTimeoutInMinutes %d: use 1 to 1440", s.DrainTimeoutInMinutes))
	}
	if s.NodeSoakDurationInMinutes < 0 || s.NodeSoakDurationInMinutes > 30 {
		errs = append(errs, fmt.Errorf("nodeSoakDurationInMinutes %d: use 0 to 30", s.NodeSoakDurationInMinutes))
	}
	if s.UndrainableNodeBehavior != Schedule && s.UndrainableNodeBehavior != Cordon {
		errs = append(errs, fmt.Errorf("undrainableNodeBehavior %q: use %s or %s", s.UndrainableNodeBehavior, Schedule, Cordon))
	}
	return errors.Join(errs...)
}

func zero(s string) bool {
	n, err := parseCount(s, 100)
	return err == nil && n == 0
}

// minute is AKS's unit of drain timeout and soak; unit tests shorten it.
var minute = time.Minute

// DrainTimeout is the per-node drain deadline.
func (s Settings) DrainTimeout() time.Duration {
	return time.Duration(s.WithDefaults().DrainTimeoutInMinutes) * minute
}

// Soak is the wait after each batch's drain.
func (s Settings) Soak() time.Duration {
	return time.Duration(s.NodeSoakDurationInMinutes) * minute
}

// Surge is the number of surge nodes for a pool of n nodes.
func (s Settings) Surge(n int) int {
	v, _ := parseCount(s.WithDefaults().MaxSurge, n)
	return v
}

// Unavailable is the number of old nodes that may be down beyond the surge.
func (s Settings) Unavailable(n int) int {
	v, _ := parseCount(s.WithDefaults().MaxUnavailable, n)
	return v
}

// BatchSize is how many old nodes are drained at once for a pool of n: the
// surge nodes take their pods, and maxUnavailable more may be down.
func (s Settings) BatchSize(n int) int {
	return max(1, min(n, s.Surge(n)+s.Unavailable(n)))
}

// Batches is how many batches a pool of n nodes takes.
func (s Settings) Batches(n int) int {
	if n == 0 {
		return 0
	}
	b := s.BatchSize(n)
	return (n + b - 1) / b
}

// String lists the settings by their AKS names.
func (s Settings) String() string {
	s = s.WithDefaults()
	return fmt.Sprintf("maxSurge=%s maxUnavailable=%s drainTimeoutInMinutes=%d nodeSoakDurationInMinutes=%d undrainableNodeBehavior=%s",
		s.MaxSurge, s.MaxUnavailable, s.DrainTimeoutInMinutes, s.NodeSoakDurationInMinutes, s.UndrainableNodeBehavior)
}

// parseCount reads a count ("2") or a percentage of pool ("33%", rounded
// up, as AKS does).
func parseCount(v string, pool int) (int, error) {
	v = strings.TrimSpace(v)
	if p, ok := strings.CutSuffix(v, "%"); ok {
		pct, err := strconv.Atoi(p)
		if err != nil || pct < 0 || pct > 100 {
			return 0, fmt.Errorf("%q: a percentage is 0%% to 100%%", v)
		}
		return int(math.Ceil(float64(pct) * float64(pool) / 100)), nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: give a count (\"1\") or a percentage of the pool (\"33%%\")", v)
	}
	return n, nil
}
