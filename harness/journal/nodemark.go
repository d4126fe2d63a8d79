package journal

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// markNode adds seq to (add) or removes it from run's marker on node. The
// patch carries the Node's resourceVersion, so a concurrent change to the
// marker is a conflict, retried; other fields are left alone. A Node that
// does not exist needs no mark.
func markNode(ctx context.Context, client kubernetes.Interface, run, node string, seq int, add bool) error {
	key := NodeAnnotation(run)
	nodes := client.CoreV1().Nodes()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := nodes.Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		before := n.Annotations[key]
		seqs := parseSeqs(before)
		if add {
			if !slices.Contains(seqs, seq) {
				seqs = append(seqs, seq)
			}
		} else {
			seqs = slices.DeleteFunc(seqs, func(s int) bool { return s == seq })
		}
		slices.Sort(seqs)
		after := formatSeqs(seqs)
		if after == before {
			return nil
		}
		// null removes the annotation in a merge patch.
		var value any
		if after != "" {
			value = after
		}
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
			"resourceVersion": n.ResourceVersion,
			"annotations":     map[string]any{key: value},
		}})
		if err != nil {
			return err
		}
		_, err = nodes.Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: ManagedBy})
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// parseSeqs reads a marker ("1,3"); what is not a number is dropped, so a
// hand-edited marker cannot block a revert.
func parseSeqs(s string) []int {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func formatSeqs(seqs []int) string {
	parts := make([]string, len(seqs))
	for i, n := range seqs {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ",")
}
