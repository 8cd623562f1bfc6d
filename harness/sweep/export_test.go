package sweep

import (
	"context"
	"time"

	"github.com/docker/docker/api/types/filters"

	"github.com/agenttls/agenttls/harness/dockerx"
)

// StaleMatching is SweepStale restricted to resources that also carry label key=value and with an
// explicit cutoff, so that a test removes only what it made, never another run's leftovers.
func StaleMatching(ctx context.Context, createdBefore time.Time, key, value string) (Removed, error) {
	cli, err := dockerx.Client(ctx)
	if err != nil {
		return Removed{}, err
	}
	defer cli.Close()
	f := filters.NewArgs(
		filters.Arg("label", LabelManaged+"=true"),
		filters.Arg("label", LabelRunID),
		filters.Arg("label", key+"="+value),
	)
	return sweep(ctx, cli, f, createdBefore)
}
