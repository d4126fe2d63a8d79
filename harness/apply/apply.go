// Package apply puts objects into a cluster with server-side apply, the way
// `kubectl apply --server-side` does: the harness's own typed fixtures and a
// user's YAML files or kustomize directory go through the same path.
package apply

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// FieldManager names the harness as the owner of the fields it applies.
const FieldManager = "rehearse"

// Applier applies objects to one cluster.
type Applier struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
}

// New makes an Applier for the cluster behind cfg.
func New(cfg *rest.Config) (*Applier, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

// Apply applies each object; namespaced objects without a namespace go to
// namespace. It stops at the first failure, naming the object.
func (a *Applier) Apply(ctx context.Context, namespace string, objs ...*unstructured.Unstructured) error {
	for _, obj := range objs {
		if err := a.applyOne(ctx, namespace, obj); err != nil {
			return fmt.Errorf("applying %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
	return nil
}

// ApplyTyped applies typed objects (Deployment, Service ...) after
// converting them; their GroupVersionKind must be set or derivable.
func (a *Applier) ApplyTyped(ctx context.Context, namespace string, objs ...runtime.Object) error {
	us, err := ToUnstructured(objs...)
	if err != nil {
		return err
	}
	return a.Apply(ctx, namespace, us...)
}

func (a *Applier) applyOne(ctx context.Context, namespace string, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	mapping, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("the cluster does not serve %s: %w (a removed or misspelled API?)", gvk, err)
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		if obj.GetNamespace() == "" {
			obj.SetNamespace(namespace)
		}
		ri = a.dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
	}
	body, err := obj.MarshalJSON()
	if err != nil {
		return err
	}
	force := true
	_, err = ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: FieldManager, Force: &force})
	return err
}

// ToUnstructured converts typed objects, filling in the kind from the
// client-go scheme when the object does not carry it.
func ToUnstructured(objs ...runtime.Object) ([]*unstructured.Unstructured, error) {
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		gvk := o.GetObjectKind().GroupVersionKind()
		if gvk.Empty() {
			kinds, _, err := scheme.ObjectKinds(o)
			if err != nil || len(kinds) == 0 {
				return nil, fmt.Errorf("unknown object type %T: %v", o, err)
			}
			gvk = kinds[0]
		}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return nil, err
		}
		u := &unstructured.Unstructured{Object: m}
		u.SetGroupVersionKind(gvk)
		unstructured.RemoveNestedField(u.Object, "status")
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		out = append(out, u)
	}
	return out, nil
}

// Load reads manifests from a path: a kustomize directory (it has a
// kustomization.yaml), a directory of YAML files (read in name order), or
// one YAML file. Multi-document files are split.
func Load(path string) ([]*unstructured.Unstructured, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("manifests %s: %w", path, err)
	}
	if !st.IsDir() {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		return Decode(b, path)
	}
	for _, k := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if _, err := os.Stat(filepath.Join(path, k)); err == nil {
			return kustomize(path)
		}
	}
	var files []string
	for _, pattern := range []string{"*.yaml", "*.yml", "*.json"} {
		m, _ := filepath.Glob(filepath.Join(path, pattern))
		files = append(files, m...)
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("manifests %s: no *.yaml, *.yml or *.json files and no kustomization.yaml", path)
	}
	var all []*unstructured.Unstructured
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		objs, err := Decode(b, f)
		if err != nil {
			return nil, err
		}
		all = append(all, objs...)
	}
	return all, nil
}

func kustomize(dir string) ([]*unstructured.Unstructured, error) {
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	b, err := resMap.AsYaml()
	if err != nil {
		return nil, err
	}
	return Decode(b, dir)
}

// Decode splits YAML or JSON documents into objects; source names the
// origin in errors.
func Decode(b []byte, source string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for i := 1; ; i++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("%s, document %d: %w", source, i, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("%s, document %d: no apiVersion/kind: is this a Kubernetes manifest?", source, i)
		}
		if strings.HasSuffix(u.GetKind(), "List") {
			items, err := u.ToList()
			if err != nil {
				return nil, err
			}
			for j := range items.Items {
				out = append(out, &items.Items[j])
			}
			continue
		}
		out = append(out, u)
	}
	return out, nil
}
