package drain

import (
	"context"

	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/client-go/kubernetes"
	policyv1client "k8s.io/client-go/kubernetes/typed/policy/v1"
)

// watchEvictions is a client whose policy/v1 evictions report every answer
// to seen. kubectl's drain helper keeps a refused eviction's error to
// itself (it only prints it and retries), so the answer is taken where the
// request is made.
type watchEvictions struct {
	kubernetes.Interface
	seen func(*policyv1.Eviction, error)
}

func (c watchEvictions) PolicyV1() policyv1client.PolicyV1Interface {
	return policyV1{PolicyV1Interface: c.Interface.PolicyV1(), seen: c.seen}
}

type policyV1 struct {
	policyv1client.PolicyV1Interface
	seen func(*policyv1.Eviction, error)
}

func (p policyV1) Evictions(namespace string) policyv1client.EvictionInterface {
	return evictions{EvictionInterface: p.PolicyV1Interface.Evictions(namespace), seen: p.seen}
}

type evictions struct {
	policyv1client.EvictionInterface
	seen func(*policyv1.Eviction, error)
}

func (e evictions) Evict(ctx context.Context, ev *policyv1.Eviction) error {
	err := e.EvictionInterface.Evict(ctx, ev)
	e.seen(ev, err)
	return err
}
