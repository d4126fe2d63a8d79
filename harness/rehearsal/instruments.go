package rehearsal

import (
	"context"
	"fmt"

	"github.com/kube-rehearse/rehearse/harness/gateway"
	"github.com/kube-rehearse/rehearse/harness/incluster"
	"github.com/kube-rehearse/rehearse/harness/load"
	"github.com/kube-rehearse/rehearse/harness/observe"
	"github.com/kube-rehearse/rehearse/harness/priority"
	"github.com/kube-rehearse/rehearse/harness/timeline"
	"github.com/kube-rehearse/rehearse/harness/verdict"
)

// client is a load client: the generators on this machine, or the
// in-cluster load's pods.
type client interface {
	Kind() timeline.ClientKind
	String() string
	Start(ctx context.Context, tl *timeline.Timeline) error
	Stop()
	Wait() (load.Summary, error)
}

// instruments measure a rehearsal: the observer of the cluster, the
// gateway's router and the clients, all recording on one timeline. A
// rehearsal and a watch start and stop them alike.
type instruments struct {
	gens   []client
	router *gateway.Router
	obs    *observe.Observer
	raised *priority.Raised

	stopped bool
	loads   map[timeline.ClientKind]load.Summary
}

// start starts the observer, the router and the clients. On error, what
// started is stopped by stop.
func (in *instruments) start(ctx context.Context, plan Plan, tl *timeline.Timeline) error {
	var err error
	if in.obs, err = observe.New(plan.Client, tl, plan.App); err != nil {
		return err
	}
	if err := in.obs.Start(ctx); err != nil {
		return err
	}
	if plan.Gateway {
		in.router, err = gateway.New(plan.Client, tl, plan.App.Namespace, plan.App.Service, plan.ServicePort,
			gateway.WithSyncDelay(plan.GatewayDelay))
		if err != nil {
			return err
		}
		if err := in.router.Start(ctx); err != nil {
			return err
		}
		g, err := load.New("http://gateway"+plan.Path, load.ViaRouter(in.router), load.Rate(plan.Rate),
			load.Duration(plan.MaxDuration), load.Name("gateway"))
		if err != nil {
			return err
		}
		in.gens = append(in.gens, g)
		tl.SetMeta(verdict.RateMetaKey(timeline.ClientGateway), fmt.Sprint(plan.Rate))
	}
	if plan.ServiceURL != "" {
		g, err := load.New(plan.ServiceURL, load.Rate(plan.Rate), load.Duration(plan.MaxDuration), load.Name("service"))
		if err != nil {
			return err
		}
		in.gens = append(in.gens, g)
		tl.SetMeta(verdict.RateMetaKey(timeline.ClientService), fmt.Sprint(plan.Rate))
	}
	if plan.InCluster != nil {
		o := *plan.InCluster
		o.Rate, o.Duration = plan.Rate, plan.MaxDuration
		l, err := incluster.New(plan.Client, plan.REST, o)
		if err != nil {
			return err
		}
		in.gens = append(in.gens, l)
		tl.SetMeta(verdict.RateMetaKey(timeline.ClientInCluster), fmt.Sprint(l.Rate()))
	}
	// The clients and the observer are the instruments: the cluster they
	// measure shares this machine's CPUs and must not starve them.
	if in.raised, err = priority.Raise(); err != nil {
		tl.Note("instruments' scheduling priority not raised: " + err.Error())
		fmt.Fprintf(plan.Out, "  priority: not raised (%v): a busy cluster may starve the clients (the verdict would then say cannot judge)\n", err)
	} else {
		tl.Note("instruments' scheduling priority: " + in.raised.Detail)
	}
	for _, g := range in.gens {
		fmt.Fprintf(plan.Out, "  %s\n", g)
		if err := g.Start(ctx, tl); err != nil {
			return err
		}
	}
	return nil
}

// stop stops what started and returns what each client did (again when
// called again).
func (in *instruments) stop() map[timeline.ClientKind]load.Summary {
	if in.stopped {
		return in.loads
	}
	in.stopped = true
	loads := map[timeline.ClientKind]load.Summary{}
	in.loads = loads
	for _, g := range in.gens {
		g.Stop()
	}
	for _, g := range in.gens {
		if sum, werr := g.Wait(); werr == nil || sum.Sent > 0 {
			loads[g.Kind()] = sum
		}
	}
	in.raised.Restore()
	if in.router != nil {
		in.router.Stop()
	}
	if in.obs != nil {
		in.obs.Stop()
	}
	return loads
}
