package verdict

import "fmt"

const (
	fixShutdown = "handle SIGTERM in the app: keep serving while the endpoint removal spreads, then stop " +
		"accepting new connections, let in-flight requests finish and close idle keep-alive connections, " +
		"then exit (Go: http.Server.Shutdown; Node.js: server.close; Spring Boot: server.shutdown=graceful)"
	fixKilled = "the process was still running at the end of terminationGracePeriodSeconds and was " +
		"SIGKILLed: make it exit on SIGTERM once in-flight work is done, or raise terminationGracePeriodSeconds " +
		"above the time that takes (a drain that blocks on it delays every node upgrade by as much)"
	fixReadiness = "give the container a readiness probe that passes only when the app can serve: " +
		"after it listens and has warmed up (caches loaded, connections to its dependencies open), " +
		"served by the real request path; use a startupProbe for slow starts instead of a long " +
		"initialDelaySeconds"
	fixZeroReady = "add a PodDisruptionBudget (minAvailable: 1, or maxUnavailable: 1) so a drain evicts " +
		"one pod at a time and waits for its replacement to be Ready, and run at least 2 replicas " +
		"spread over nodes (topologySpreadConstraints or podAntiAffinity) so one node's drain " +
		"cannot take them all"
	fixDNS = "name resolution failed: check CoreDNS (pods Ready, not all on the drained node, a PDB " +
		"of its own) and the nodes' resolv.conf after the node image change; in the app, cache " +
		"resolved addresses and retry a failed lookup"
	fixAppError = "the app answered errors while it was serving and not being replaced: look at its logs " +
		"at those times; if it fails a few requests all the time, that is its baseline, not the fault's doing"
	fixRestart = "the app's container restarted (a crash or a failed liveness probe) during the fault: look " +
		"at its last logs and exit reason (kubectl logs --previous)"
	fixRetryOtherEndpoint = "these requests went to pods whose node had died before Kubernetes noticed " +
		"(its node controller waits --node-monitor-grace-period, 50 s by default, not settable on AKS): " +
		"no pod setting saves them. Clients and gateways do: retry a failed idempotent request on another " +
		"endpoint with a short per-try timeout (Envoy retry_on connect-failure,reset with retry_host_predicate " +
		"previous_hosts; ingress-nginx proxy_next_upstream error timeout), and eject endpoints that stop " +
		"answering (outlier detection)"
	fixNodeImage = "hold the upgrade (AKS: leave the pool on its node image, with the node OS upgrade " +
		"channel off, until a fixed image ships) and compare what the two images give a pod: the resolver file " +
		"the kubelet hands to pods with dnsPolicy Default (kubelet resolvConf), the cgroup version, the kernel " +
		"and its sysctls, the container runtime; the app's logs on the new nodes name the call that failed"
	fixReadinessOnBrokenNode = "the pods there were Ready yet never served: a readiness probe that " +
		"exercises what a request needs (its dependency's name resolving, say) keeps such pods out of the " +
		"Service, and a budget then stops the upgrade at its drain instead of letting it replace every node"
	fixDNSNodeImage = "the new node image broke name resolution on its nodes: hold the upgrade until an image " +
		"with a working resolver configuration ships, and compare the resolver file the kubelet hands to pods " +
		"with dnsPolicy Default and to CoreDNS (kubelet resolvConf): on nodes with a local stub resolver it must " +
		"name the real upstream servers (/run/systemd/resolve/resolv.conf), never the stub's 127.0.0.53, which " +
		"inside a pod is the pod itself; in the app, resolve through the cluster's DNS (dnsPolicy ClusterFirst) " +
		"unless it needs the node's resolver, and cache resolved addresses"
	fixUnexplained = "no pod or endpoint event explains these failures: look at what happened at " +
		"those times (the events listed, the app's logs, kube-proxy and the CNI on the nodes involved)"
)

func (a *analysis) fixFor(w *window, c Class, dom Cause, absorbed, failed int) string {
	switch c {
	case ClassNoGracefulShutdown:
		return fixShutdown
	case ClassEndpointLag:
		return a.preStopFix(w)
	case ClassNotReadyTraffic:
		return fixReadiness
	case ClassZeroReady:
		return fixZeroReady
	case ClassDNS:
		return fixDNS
	case ClassNoRetries:
		return fmt.Sprintf("make clients retry idempotent requests once after a short backoff "+
			"(100-500 ms) with a per-try timeout, and add a circuit breaker for longer outages: "+
			"%d of the %d failures were short blips a retry would have hidden", absorbed, failed)
	}
	switch dom {
	case CauseAppError:
		return fixAppError
	case CauseRestart:
		return fixRestart
	}
	return fixUnexplained
}
