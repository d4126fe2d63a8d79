package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

func slice(ready map[string]bool) *discoveryv1.EndpointSlice {
	name, port := "http", int32(8080)
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-abc", Namespace: "ns", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
	}
	for _, pod := range []string{"web-1", "web-2", "web-3"} {
		r, ok := ready[pod]
		if !ok {
			continue
		}
		node := "node-" + pod[len(pod)-1:]
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{"10.244.0." + pod[len(pod)-1:]},
			Conditions: discoveryv1.EndpointConditions{Ready: &r},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: pod, UID: types.UID("uid-" + pod)},
			NodeName:   &node,
		})
	}
	return s
}

func TestRouterFollowsEndpointsAfterItsDelay(t *testing.T) {
	ctx := context.Background()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}}}
	client := fake.NewClientset(svc, slice(map[string]bool{"web-1": true, "web-2": true, "web-3": false}))
	tl := timeline.New(time.Now())
	r, err := New(client, tl, "ns", "web", 80, WithSyncDelay(300*time.Millisecond))
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx))
	defer r.Stop()

	assert.Len(t, r.Routed(), 2, "the ready endpoints are routed at once")
	seen := map[string]int{}
	for i := 0; i < 10; i++ {
		e, ok := r.Pick()
		require.True(t, ok)
		seen[e.Pod]++
		assert.Equal(t, "10.244.0."+e.Pod[4:]+":8080", e.Addr)
	}
	assert.Equal(t, map[string]int{"web-1": 5, "web-2": 5}, seen, "round-robin")

	// web-1 terminates (not ready), web-3 becomes ready.
	_, err = client.DiscoveryV1().EndpointSlices("ns").Update(ctx, slice(map[string]bool{"web-1": false, "web-2": true, "web-3": true}), metav1.UpdateOptions{})
	require.NoError(t, err)
	changed := time.Now()
	time.Sleep(100 * time.Millisecond)
	assert.Len(t, r.Routed(), 2)
	assert.Equal(t, "web-1", r.Routed()[0].Pod, "the change has not reached the gateway yet")
	require.Eventually(t, func() bool { return len(r.Routed()) == 2 && r.Routed()[0].Pod == "web-2" }, 2*time.Second, 10*time.Millisecond)
	assert.GreaterOrEqual(t, time.Since(changed), 300*time.Millisecond)

	e, ok := r.Lookup("10.244.0.1:8080")
	assert.True(t, ok, "a pod routed before is still known")
	assert.Equal(t, "uid-web-1", e.UID)

	var kinds []string
	for _, ev := range tl.Events() {
		kinds = append(kinds, ev.Kind.String()+" "+ev.Pod)
		assert.Equal(t, timeline.ClientGateway, ev.Client)
	}
	assert.Equal(t, []string{"RouteAdded web-1", "RouteAdded web-2", "RouteAdded web-3", "RouteRemoved web-1"}, kinds)
}

func TestRouterNamesAMissingPort(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	r, err := New(fake.NewClientset(svc), timeline.New(time.Now()), "ns", "web", 8080)
	require.NoError(t, err)
	err = r.Start(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "has no port 8080")
}
