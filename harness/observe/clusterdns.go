package observe

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// The cluster's DNS is a second observed target: how many endpoints of
// CoreDNS's Service (kube-system/kube-dns, as kubeadm and AKS name it) are
// ready, over time. A verdict then tells name resolution that failed with
// the cluster's DNS down from resolution that failed with it up (a node's
// resolver, dropped packets, a misconfigured Corefile).
const (
	ClusterDNSNamespace = "kube-system"
	ClusterDNSService   = "kube-dns"
)

// dnsTracker holds the ready endpoints of each of the DNS Service's slices.
type dnsTracker struct {
	mu     sync.Mutex
	slices map[string][]string // slice name -> its ready endpoints ("pod on node")
	last   int                 // ready endpoints last recorded; -1 before the first
}

// watchClusterDNS adds the watch of the DNS Service's endpoints, unless the
// identity may not list them (a cluster that is not ours): then a note says
// so, and the rehearsal goes on without it. Its interruptions are not the
// app's observation gaps (quiet): they cost only this evidence.
func (o *Observer) watchClusterDNS(ctx context.Context) error {
	sel := discoveryv1.LabelServiceName + "=" + ClusterDNSService
	slices := o.client.DiscoveryV1().EndpointSlices(ClusterDNSNamespace)
	if _, err := slices.List(ctx, metav1.ListOptions{LabelSelector: sel, Limit: 1}); err != nil {
		o.emit(timeline.Event{Offset: o.tl.Now(), Kind: timeline.EvNote, Name: "cluster DNS not watched",
			Detail: fmt.Sprintf("the endpoints of %s/%s could not be listed (%v): verdicts about name resolution go without CoreDNS's state",
				ClusterDNSNamespace, ClusterDNSService, err)})
		return nil
	}
	o.dns.slices, o.dns.last = map[string][]string{}, -1
	w, err := o.newWatch(watchSpec{
		what:    fmt.Sprintf("endpointslices of the cluster's DNS, service %s/%s", ClusterDNSNamespace, ClusterDNSService),
		hint:    "list and watch on endpointslices.discovery.k8s.io in namespace " + ClusterDNSNamespace,
		quiet:   true,
		example: &discoveryv1.EndpointSlice{}, tweak: func(lo *metav1.ListOptions) { lo.LabelSelector = sel },
		list: lister(slices.List), watch: slices.Watch,
		handler: cache.ResourceEventHandlerDetailedFuncs{
			AddFunc:    func(obj any, initial bool) { o.dnsSliceChanged(obj, initial, false) },
			UpdateFunc: func(_, obj any) { o.dnsSliceChanged(obj, false, false) },
			DeleteFunc: func(obj any) { o.dnsSliceChanged(obj, false, true) },
		},
	})
	if err != nil {
		return err
	}
	o.watches = append(o.watches, w)
	return nil
}

// dnsSliceChanged records the number of ready DNS endpoints when it changes.
func (o *Observer) dnsSliceChanged(obj any, initial, deleted bool) {
	s, ok := unwrap(obj).(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	at := o.when(initial)
	t := &o.dns
	t.mu.Lock()
	defer t.mu.Unlock()
	if deleted {
		delete(t.slices, s.Name)
	} else {
		var ready []string
		for _, ep := range sliceEndpoints(s) {
			if ep.ready {
				ready = append(ready, ep.pod+" on "+orNone(ep.node))
			}
		}
		t.slices[s.Name] = ready
	}
	var all []string
	for _, r := range t.slices {
		all = append(all, r...)
	}
	if len(all) == t.last {
		return
	}
	t.last = len(all)
	detail := fmt.Sprintf("%s/%s: %d ready endpoints", ClusterDNSNamespace, ClusterDNSService, len(all))
	if len(all) > 0 {
		sort.Strings(all)
		detail += " (" + strings.Join(all, ", ") + ")"
	}
	o.emit(timeline.Event{Offset: at, Kind: timeline.EvClusterDNS, Name: strconv.Itoa(len(all)), Detail: initialPrefix(initial) + detail})
}

func orNone(s string) string {
	if s == "" {
		return "no node"
	}
	return s
}
