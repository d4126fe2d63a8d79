package preflight

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
)

// removal is an API version of a kind that a Kubernetes minor stopped
// serving, and what replaces it.
type removal struct {
	groupVersion string
	kinds        []string
	removedIn    int // the minor: 22 for v1.22
	use          string
}

// APIRemovalsSource is where the removals table comes from.
const APIRemovalsSource = "Kubernetes' deprecated API migration guide (kubernetes.io/docs/reference/using-api/deprecation-guide)"

// removals lists the API versions each Kubernetes minor removed (see
// APIRemovalsSource), as far as workloads' and operators' manifests use them.
var removals = []removal{
	{"extensions/v1beta1", []string{"Deployment", "DaemonSet", "ReplicaSet"}, 16, "apps/v1"},
	{"extensions/v1beta1", []string{"NetworkPolicy"}, 16, "networking.k8s.io/v1"},
	{"extensions/v1beta1", []string{"PodSecurityPolicy"}, 16, "policy/v1beta1 (itself removed in v1.25: Pod Security Admission)"},
	{"apps/v1beta1", []string{"Deployment", "StatefulSet", "ReplicaSet"}, 16, "apps/v1"},
	{"apps/v1beta2", []string{"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}, 16, "apps/v1"},
	{"extensions/v1beta1", []string{"Ingress"}, 22, "networking.k8s.io/v1"},
	{"networking.k8s.io/v1beta1", []string{"Ingress", "IngressClass"}, 22, "networking.k8s.io/v1"},
	{"admissionregistration.k8s.io/v1beta1", []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}, 22, "admissionregistration.k8s.io/v1"},
	{"apiextensions.k8s.io/v1beta1", []string{"CustomResourceDefinition"}, 22, "apiextensions.k8s.io/v1"},
	{"apiregistration.k8s.io/v1beta1", []string{"APIService"}, 22, "apiregistration.k8s.io/v1"},
	{"authentication.k8s.io/v1beta1", []string{"TokenReview"}, 22, "authentication.k8s.io/v1"},
	{"authorization.k8s.io/v1beta1", []string{"SubjectAccessReview", "LocalSubjectAccessReview", "SelfSubjectAccessReview"}, 22, "authorization.k8s.io/v1"},
	{"certificates.k8s.io/v1beta1", []string{"CertificateSigningRequest"}, 22, "certificates.k8s.io/v1"},
	{"coordination.k8s.io/v1beta1", []string{"Lease"}, 22, "coordination.k8s.io/v1"},
	{"rbac.authorization.k8s.io/v1beta1", []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}, 22, "rbac.authorization.k8s.io/v1"},
	{"scheduling.k8s.io/v1beta1", []string{"PriorityClass"}, 22, "scheduling.k8s.io/v1"},
	{"storage.k8s.io/v1beta1", []string{"CSIDriver", "CSINode", "StorageClass", "VolumeAttachment"}, 22, "storage.k8s.io/v1"},
	{"batch/v1beta1", []string{"CronJob"}, 25, "batch/v1"},
	{"discovery.k8s.io/v1beta1", []string{"EndpointSlice"}, 25, "discovery.k8s.io/v1"},
	{"events.k8s.io/v1beta1", []string{"Event"}, 25, "events.k8s.io/v1"},
	{"autoscaling/v2beta1", []string{"HorizontalPodAutoscaler"}, 25, "autoscaling/v2"},
	{"policy/v1beta1", []string{"PodDisruptionBudget"}, 25, "policy/v1"},
	{"policy/v1beta1", []string{"PodSecurityPolicy"}, 25, "nothing: Pod Security Admission replaces it"},
	{"node.k8s.io/v1beta1", []string{"RuntimeClass"}, 25, "node.k8s.io/v1"},
	{"flowcontrol.apiserver.k8s.io/v1beta1", []string{"FlowSchema", "PriorityLevelConfiguration"}, 26, "flowcontrol.apiserver.k8s.io/v1"},
	{"autoscaling/v2beta2", []string{"HorizontalPodAutoscaler"}, 26, "autoscaling/v2"},
	{"storage.k8s.io/v1beta1", []string{"CSIStorageCapacity"}, 27, "storage.k8s.io/v1"},
	{"flowcontrol.apiserver.k8s.io/v1beta2", []string{"FlowSchema", "PriorityLevelConfiguration"}, 29, "flowcontrol.apiserver.k8s.io/v1"},
	{"flowcontrol.apiserver.k8s.io/v1beta3", []string{"FlowSchema", "PriorityLevelConfiguration"}, 32, "flowcontrol.apiserver.k8s.io/v1"},
}

func lookupRemoval(groupVersion, kind string) (removal, bool) {
	for _, r := range removals {
		if r.groupVersion == groupVersion {
			for _, k := range r.kinds {
				if k == kind {
					return r, true
				}
			}
		}
	}
	return removal{}, false
}

// parseMinor reads "v1.34", "1.34" or "v1.34.4" as 34.
func parseMinor(v string) (int, error) {
	parts := strings.Split(strings.TrimPrefix(strings.TrimSpace(v), "v"), ".")
	if len(parts) < 2 || parts[0] != "1" {
		return 0, errors.New("not a Kubernetes version")
	}
	m, err := strconv.Atoi(parts[1])
	if err != nil || m < 0 {
		return 0, errors.New("not a Kubernetes version")
	}
	return m, nil
}

// manifestAPIs scans YAML and JSON files (one, or a directory's, walked)
// for objects of API versions removed by the minor to (0: any removal).
func manifestAPIs(path string, to int) ([]Finding, error) {
	var out []Finding
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ext := strings.ToLower(filepath.Ext(p))
		if d.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		found, err := scanManifest(p, b, to)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", p, err)
		}
		out = append(out, found...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func scanManifest(file string, b []byte, to int) ([]Finding, error) {
	var out []Finding
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var obj struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := dec.Decode(&obj); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		r, ok := lookupRemoval(obj.APIVersion, obj.Kind)
		if !ok {
			continue
		}
		name := obj.Metadata.Name
		if obj.Metadata.Namespace != "" {
			name = obj.Metadata.Namespace + "/" + name
		}
		f := Finding{Rule: RuleRemovedAPIsInManifests, Class: 4, Object: fmt.Sprintf("%s %s (%s)", obj.Kind, name, file),
			Fix: fmt.Sprintf("move it to %s before the upgrade (source: %s)", r.use, APIRemovalsSource)}
		if to == 0 || r.removedIn <= to {
			f.Severity = Blocker
			f.Evidence = fmt.Sprintf("apiVersion %s, which Kubernetes v1.%d no longer serves: after the upgrade this manifest no longer applies", obj.APIVersion, r.removedIn)
		} else {
			f.Severity = Info
			f.Evidence = fmt.Sprintf("apiVersion %s is removed in v1.%d, after this upgrade to v1.%d", obj.APIVersion, r.removedIn, to)
		}
		out = append(out, f)
	}
}

// calledAPIs reads the API server's apiserver_requested_deprecated_apis
// metric: the deprecated API versions clients really called since it
// started, which no scan of manifests can see (a controller, a CI job, a
// Helm release built from an old chart). why says why it could not look.
func calledAPIs(ctx context.Context, client kubernetes.Interface, to int) (out []Finding, why string) {
	raw, err := readMetrics(ctx, client)
	if err != nil {
		if apierrors.IsForbidden(err) {
			return nil, "the API server's /metrics is forbidden to these credentials (grant get on the non-resource URL /metrics)"
		}
		return nil, fmt.Sprintf("the API server's /metrics could not be read: %v", err)
	}
	calls, err := deprecatedCalls(raw)
	if err != nil {
		return nil, fmt.Sprintf("the API server's /metrics could not be parsed: %v", err)
	}
	for _, c := range calls {
		f := Finding{Rule: RuleRemovedAPIsCalled, Class: 4, Object: c.String(),
			Fix: "find the caller (the API server's audit log, or the deprecation warnings it logs) and move it to the served version"}
		removed, err := parseMinor(c.removedRelease)
		switch {
		case err == nil && (to == 0 || removed <= to):
			f.Severity = Blocker
			f.Evidence = fmt.Sprintf("clients called it since the API server started (its apiserver_requested_deprecated_apis metric), and v1.%d no longer serves it: after the upgrade those calls fail", removed)
		case err == nil:
			f.Severity = Info
			f.Evidence = fmt.Sprintf("clients called it (apiserver_requested_deprecated_apis); it is removed in v1.%d, after this upgrade", removed)
		default:
			f.Severity = Info
			f.Evidence = "clients called this deprecated API (apiserver_requested_deprecated_apis); no removal is planned yet"
		}
		out = append(out, f)
	}
	return out, ""
}

// readMetrics reads the API server's metrics (tests replace it: client-go's
// fake clientset has no REST client).
var readMetrics = func(ctx context.Context, client kubernetes.Interface) ([]byte, error) {
	return client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
}

// deprecatedCall is one series of apiserver_requested_deprecated_apis.
type deprecatedCall struct {
	group, version, resource, subresource, removedRelease string
}

func (c deprecatedCall) String() string {
	gv := c.version
	if c.group != "" {
		gv = c.group + "/" + c.version
	}
	s := gv + " " + c.resource
	if c.subresource != "" {
		s += "/" + c.subresource
	}
	return s
}

// deprecatedCalls parses the metric from the Prometheus text format.
func deprecatedCalls(raw []byte) ([]deprecatedCall, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	var out []deprecatedCall
	fam, ok := families["apiserver_requested_deprecated_apis"]
	if !ok {
		return nil, nil
	}
	for _, m := range fam.GetMetric() {
		if m.GetGauge().GetValue() == 0 {
			continue
		}
		c := deprecatedCall{}
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "group":
				c.group = l.GetValue()
			case "version":
				c.version = l.GetValue()
			case "resource":
				c.resource = l.GetValue()
			case "subresource":
				c.subresource = l.GetValue()
			case "removed_release":
				c.removedRelease = l.GetValue()
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}
