// Package hostroute makes the pod IPs of a local kind cluster reachable from
// the host, with one host route per node.
//
// # Why
//
// The gateway client behaves like an ingress controller or a mesh: it follows
// a Service's EndpointSlices and sends every request straight to a pod's IP,
// so it knows which pod each request went to. An ingress controller runs
// inside the cluster and reaches pod IPs natively; the harness runs on the
// host, which does not. On a Linux host running Docker, the kind node
// containers sit on a Docker bridge network the host is attached to (for
// example 172.18.0.0/16), and each Node's spec.podCIDR (for example
// 10.244.1.0/24) is routed inside that node. One host route per node, the
// equivalent of
//
//	ip route replace 10.244.1.0/24 via 172.18.0.3 proto 82
//
// is enough for the host to reach every pod directly (measured on a kind
// cluster from our node image).
//
// # What is changed on the host, and how it is undone
//
// Only routes in the main IPv4 routing table, one per node: destination the
// node's pod CIDR, gateway the node's address on the kind network. They carry
// the routing protocol number [Protocol] (82, shown by `ip route` as
// "proto 82"; unused by the kernel and by the routing daemons listed in
// /etc/iproute2/rt_protos, and 0x52 is "R"), so they can be found without any
// file: `ip route show proto 82` lists them and `ip route flush proto 82`
// removes them all.
//
// Every route is journalled in a record file per cluster before it is added,
// and taken out of the file after it is deleted, so the file never claims
// less than what is installed. The file is JSON, written atomically (a
// temporary file renamed over it), in $REHEARSE_CACHE_DIR/hostroutes, else
// ~/.cache/rehearse/hostroutes ($XDG_CACHE_HOME honoured). [Manager.Remove]
// deletes a cluster's routes and its file when the cluster is deleted;
// [Cleanup] does the same from the file alone (another process, after a
// crash); [Recorded] lists the clusters that still have a file, for
// `rehearse restore`. Routes do not survive a reboot; their files do, and
// Cleanup then only removes the file.
//
// # What is refused
//
// A route is never added for a pod CIDR that overlaps anything the host
// already uses: an address of the host (or its peer, for point-to-point
// links) or a route in any routing table (the host's LAN, a Docker bridge, a
// VPN's ranges, policy-routing tables) that this package did not add. The
// default route 0.0.0.0/0 does not count: it overlaps everything. A route
// this package added for the same cluster is not a conflict, so Sync can be
// repeated. A route recorded for another cluster is: kind clusters all use
// the pod subnet 10.244.0.0/16 unless configured otherwise, so only one
// cluster at a time can have host routes. The gateway must be on a network
// the host is directly attached to; when it is not, Docker runs in a VM
// (Docker Desktop) or on another machine, and no host route can help.
//
// IPv4 only: kind's IPv4 pod subnets are what the harness uses.
//
// # When host routes are unavailable
//
// Adding routes needs Linux and CAP_NET_ADMIN (root); [Available] says
// whether this process can, and what to do otherwise. The alternative is a
// client that runs in a container attached to the cluster's Docker network,
// where pod IPs are routed by the nodes themselves; it is not part of this
// package.
package hostroute
