package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/fixtures/ociimage"
	"github.com/kube-rehearse/rehearse/harness"
)

// The shop must survive a rolling restart under load without a single
// failed request, seen by a gateway and by clients behind a load balancer.
func TestShopSurvivesARollingRestart(t *testing.T) {
	ctx := context.Background()
	image, err := ociimage.GoProgram(ctx, ".", "example.com/shop", "example.com/shop:v1", t.TempDir())
	require.NoError(t, err)
	r, err := harness.New(
		harness.WithKindCluster("rehearse-example", 2),
		harness.WithApp(harness.Manifests("deploy", "shop", "shop", 80, image)),
	)
	require.NoError(t, err)
	defer r.Close(ctx)
	res, err := r.Rehearse(ctx, harness.RollingRestart())
	require.NoError(t, err)
	require.True(t, res.Report.Passed(), harness.Summary(res))
}
