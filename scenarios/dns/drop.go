package dns

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/scenario"
	"github.com/kube-rehearse/rehearse/harness/target"
)

// dropComment marks the packet-filter rules dns-drop adds, so that the
// undo removes exactly those (and all of them, however often a killed run
// added them).
const dropComment = "rehearse-dns-drop"

// dropRule is one rule, as iptables arguments after the operation: DNS
// queries (UDP and TCP port 53) arriving from the node's pods, dropped in
// the raw table before connection tracking and kube-proxy's rewriting, so
// both a pod's queries and a CoreDNS pod's upstream queries are lost.
func dropRule(proto string) []string {
	return []string{"-t", "raw", "PREROUTING", "-p", proto, "--dport", "53", "-m", "comment", "--comment", dropComment, "-j", "DROP"}
}

// Drop drops the DNS packets of the pods of each node for hold.
func Drop(nodes []string, hold time.Duration) scenario.Scenario {
	steps := make([]scenario.Step, 0, len(nodes)+1)
	for _, node := range nodes {
		steps = append(steps, scenario.Do("drop the DNS packets of the pods on node "+node, func(ctx context.Context, sc *scenario.Context) error {
			if sc.Target == nil {
				return target.NotAvailable("dropping DNS packets on node "+node, "no node access on this target")
			}
			return sc.Change(ctx, "packet filter on node "+node+": drop DNS from its pods", RemoveDrop(node), func(ctx context.Context) error {
				for _, proto := range []string{"udp", "tcp"} {
					if out, err := sc.Target.Exec(ctx, node, nil, iptables("-I", dropRule(proto))...); err != nil {
						return fmt.Errorf("iptables on %s: %w: %s", node, err, strings.TrimSpace(string(out)))
					}
				}
				return nil
			})
		}))
	}
	steps = append(steps, holdFor(hold))
	return scenario.Scenario{
		Kind:     KindDrop,
		Settings: []scenario.Setting{{Name: "nodes", Value: strings.Join(nodes, ",")}, {Name: "hold", Value: hold.String()}},
		Steps:    steps,
		Checks:   checks,
	}
}

// iptables is the command line of one rule operation ("-I", "-D"), waiting
// up to 5 s for the table lock kube-proxy also takes.
func iptables(op string, rule []string) []string {
	args := []string{"iptables", "-w", "5", rule[0], rule[1], op}
	return append(args, rule[2:]...)
}

// removeDrops deletes every rule dns-drop added on node; none left is
// success.
func removeDrops(ctx context.Context, t target.Target, node string) error {
	var script []string
	for _, proto := range []string{"udp", "tcp"} {
		script = append(script, "while "+strings.Join(iptables("-D", dropRule(proto)), " ")+" 2>/dev/null; do :; done")
	}
	out, err := t.Exec(ctx, node, nil, "sh", "-c", strings.Join(script, "; "))
	if err != nil {
		return fmt.Errorf("removing the DNS drop rules on %s: %w: %s", node, err, strings.TrimSpace(string(out)))
	}
	return nil
}
