package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kube-rehearse/rehearse/fixtures/appspec"
	"github.com/kube-rehearse/rehearse/harness/cluster"
	"github.com/kube-rehearse/rehearse/harness/deploy"
	"github.com/kube-rehearse/rehearse/harness/engine"
	"github.com/kube-rehearse/rehearse/harness/observe"
	"github.com/kube-rehearse/rehearse/harness/rehearsal"
	"github.com/kube-rehearse/rehearse/scenarios/restart"
)

// rehearsalFlags choose the application and how hard to push it.
type rehearsalFlags struct {
	preset     string
	rate       int
	out        string
	manifests  string
	archives   string
	deployment string
	service    string
	port       int
}

func (r *rehearsalFlags) register(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
}) {
	names := make([]string, 0, len(appspec.Presets()))
	for _, p := range appspec.Presets() {
		names = append(names, string(p))
	}
	fs.StringVar(&r.preset, "preset", string(appspec.PresetWellBehaved), "rehearsal app variant: "+strings.Join(names, ", "))
	fs.IntVar(&r.rate, "rate", 200, "requests per second during the rehearsal (1-5000)")
	fs.StringVar(&r.out, "out", "rehearsal-results", "directory for the timeline (timeline.jsonl) and the verdict (verdict.txt)")
	fs.StringVar(&r.manifests, "manifests", "", "your own app instead of the rehearsal app: a YAML file, a directory of them, or a kustomize directory")
	fs.StringVar(&r.archives, "image-archive", "", "image archives (docker save / OCI tar) your manifests use, comma-separated; loaded into every node")
	fs.StringVar(&r.deployment, "deployment", "", "with --manifests: the Deployment to restart")
	fs.StringVar(&r.service, "service", "", "with --manifests: the Service clients use")
	fs.IntVar(&r.port, "port", 80, "with --manifests: the Service port clients use")
}

func (r rehearsalFlags) validate() error {
	var problems []string
	if r.rate < 1 || r.rate > 5000 {
		problems = append(problems, fmt.Sprintf("--rate %d: use 1 to 5000 requests per second", r.rate))
	}
	if r.manifests == "" {
		if _, err := appspec.PresetSpec(appspec.Preset(r.preset), appspec.Image); err != nil {
			problems = append(problems, fmt.Sprintf("--preset %q: %v", r.preset, err))
		}
	} else {
		if _, err := os.Stat(r.manifests); err != nil {
			problems = append(problems, fmt.Sprintf("--manifests %s: %v", r.manifests, err))
		}
		if r.deployment == "" || r.service == "" {
			problems = append(problems, "--manifests needs --deployment and --service (and --port if not 80): which Deployment to restart and which Service clients use")
		}
		for _, a := range splitList(r.archives) {
			if _, err := os.Stat(a); err != nil {
				problems = append(problems, fmt.Sprintf("--image-archive %s: %v", a, err))
			}
		}
	}
	if len(problems) > 0 {
		return usageError{"run: " + strings.Join(problems, "; ")}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// rehearse deploys the app, restarts it under load, writes the timeline and
// the verdict, and fails when the verdict fails.
func (r rehearsalFlags) rehearse(ctx context.Context, c *cluster.Cluster, f clusterFlags) error {
	target, deployment, err := r.deploy(ctx, c, f)
	if err != nil {
		return err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", f.hostPort)
	if err := deploy.WaitServing(ctx, url); err != nil {
		return err
	}
	fmt.Printf("Rehearsal: rolling restart of %s/%s under %d requests/s against %s\n", target.Namespace, deployment, r.rate, url)
	res, err := rehearsal.Run(ctx, c.Client(), rehearsal.Plan{
		Target: target, URL: url, Rate: r.rate,
		Scenario: restart.RollingRestart{Namespace: target.Namespace, Deployment: deployment},
	})
	if res.Timeline != nil {
		if werr := r.write(res); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return err
	}
	fmt.Printf("load: %s\nverdict:\n%s", res.Load, res.Report)
	for _, chk := range res.Report.Failed() {
		if chk.Diagnosis != nil {
			fmt.Printf("\n%s: class %d, %s\n  fix: %s\n", chk.Name, chk.Diagnosis.Class, chk.Diagnosis.Title, chk.Diagnosis.Fix)
		}
	}
	if failed := res.Report.Failed(); len(failed) > 0 {
		return fmt.Errorf("the rehearsal failed %d verdict(s): see above and %s", len(failed), r.out)
	}
	fmt.Println("rehearsal passed")
	return nil
}

func (r rehearsalFlags) deploy(ctx context.Context, c *cluster.Cluster, f clusterFlags) (observe.Target, string, error) {
	if r.manifests != "" {
		for _, a := range splitList(r.archives) {
			if err := c.LoadImageArchive(ctx, a); err != nil {
				return observe.Target{}, "", err
			}
		}
		t, err := deploy.User(ctx, c.RESTConfig(), c.Client(), deploy.UserApp{
			Manifests: r.manifests, Namespace: "rehearsal", Deployment: r.deployment,
			Service: r.service, Port: int32(r.port), NodePort: int32(f.nodePort),
		})
		return t, r.deployment, err
	}
	root, err := engine.FindModuleRoot()
	if err != nil {
		return observe.Target{}, "", err
	}
	dir, err := os.MkdirTemp("", "rehearse-app-")
	if err != nil {
		return observe.Target{}, "", err
	}
	defer os.RemoveAll(dir)
	archive, err := appspec.BuildArchive(ctx, root, dir)
	if err != nil {
		return observe.Target{}, "", err
	}
	if err := c.LoadImageArchive(ctx, archive); err != nil {
		return observe.Target{}, "", err
	}
	spec, err := appspec.PresetSpec(appspec.Preset(r.preset), appspec.Image)
	if err != nil {
		return observe.Target{}, "", err
	}
	spec.Namespace, spec.Service.NodePort = "rehearsal", int32(f.nodePort)
	t, err := deploy.App(ctx, c.RESTConfig(), c.Client(), spec)
	return t, spec.Name, err
}

func (r rehearsalFlags) write(res rehearsal.Result) error {
	if err := os.MkdirAll(r.out, 0o755); err != nil {
		return err
	}
	fh, err := os.Create(filepath.Join(r.out, "timeline.jsonl"))
	if err != nil {
		return err
	}
	if err := res.Timeline.Encode(fh); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(r.out, "verdict.txt"), []byte(res.Report.String()), 0o644)
}
