// Package sweep removes what a harness run leaves in Docker, by label. Every container, network
// and image the harness creates for a run carries Labels(runID): the run's id and a marker that
// the harness manages it. Sweep removes one run's leftovers (after the run, or after it was
// interrupted); SweepStale removes leftovers of earlier runs that no one swept. Images built as
// caches (the tools and node images) carry no run id and are never swept.
package sweep

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/agenttls/agenttls/harness/dockerx"
)

const (
	// LabelRunID holds the id of the run that created the resource.
	LabelRunID = "org.agenttls.run-id"
	// LabelManaged marks every resource the harness creates ("true").
	LabelManaged = "org.agenttls.managed"
)

// Labels returns the labels every resource of run runID carries. The map is new on each call, so
// callers may add to it.
func Labels(runID string) map[string]string {
	return map[string]string{LabelRunID: runID, LabelManaged: "true"}
}

// Removed lists what a sweep removed: container names, network names, image tags (or ids when
// untagged).
type Removed struct {
	Containers []string `json:"containers,omitempty"`
	Networks   []string `json:"networks,omitempty"`
	Images     []string `json:"images,omitempty"`
}

// Empty reports whether nothing was removed.
func (r Removed) Empty() bool {
	return len(r.Containers) == 0 && len(r.Networks) == 0 && len(r.Images) == 0
}

// String is a one-line summary for logs.
func (r Removed) String() string {
	if r.Empty() {
		return "nothing to remove"
	}
	var parts []string
	add := func(kind string, names []string) {
		if len(names) > 0 {
			parts = append(parts, fmt.Sprintf("%d %s (%s)", len(names), kind, strings.Join(names, ", ")))
		}
	}
	add("containers", r.Containers)
	add("networks", r.Networks)
	add("images", r.Images)
	return "removed " + strings.Join(parts, "; ")
}

// Sweep removes every container (forcibly, with its anonymous volumes), then every network, then
// every image labelled with run id runID. It goes on past individual failures and returns them
// joined, together with what it did remove.
func Sweep(ctx context.Context, runID string) (Removed, error) {
	if runID == "" {
		return Removed{}, errors.New("sweep: empty run id; pass the id the run labelled its resources with")
	}
	cli, err := dockerx.Client(ctx)
	if err != nil {
		return Removed{}, fmt.Errorf("sweep run %s: %w", runID, err)
	}
	defer cli.Close()
	f := filters.NewArgs(
		filters.Arg("label", LabelManaged+"=true"),
		filters.Arg("label", LabelRunID+"="+runID),
	)
	r, err := sweep(ctx, cli, f, time.Time{})
	if err != nil {
		return r, fmt.Errorf("sweep run %s: %w", runID, err)
	}
	// The run's lock files on the host go with its containers.
	if err := dockerx.RemoveLocks(runID); err != nil {
		return r, fmt.Errorf("sweep run %s: %w", runID, err)
	}
	return r, nil
}

// InUse counts the containers that carry run id runID: a run by that id is going on, or was kept.
func InUse(ctx context.Context, runID string) (int, error) {
	cli, err := dockerx.Client(ctx)
	if err != nil {
		return 0, fmt.Errorf("look up run %s: %w", runID, err)
	}
	defer cli.Close()
	cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelManaged+"=true"), filters.Arg("label", LabelRunID+"="+runID))})
	if err != nil {
		return 0, fmt.Errorf("look up run %s: %w", runID, err)
	}
	return len(cs), nil
}

// SweepStale removes the leftovers of any run (resources labelled managed and with a run id) that
// were created more than olderThan ago. Choose olderThan longer than the longest run, so that a
// run still going on another process is not swept from under it.
func SweepStale(ctx context.Context, olderThan time.Duration) (Removed, error) {
	cli, err := dockerx.Client(ctx)
	if err != nil {
		return Removed{}, fmt.Errorf("sweep stale runs: %w", err)
	}
	defer cli.Close()
	f := filters.NewArgs(
		filters.Arg("label", LabelManaged+"=true"),
		filters.Arg("label", LabelRunID),
	)
	r, err := sweep(ctx, cli, f, time.Now().Add(-olderThan))
	if err != nil {
		return r, fmt.Errorf("sweep stale runs (older than %s): %w", olderThan, err)
	}
	return r, nil
}

// sweep removes what matches f and, when createdBefore is not zero, was created before it.
func sweep(ctx context.Context, cli client.APIClient, f filters.Args, createdBefore time.Time) (Removed, error) {
	var r Removed
	var errs []error
	old := func(t time.Time) bool { return createdBefore.IsZero() || t.Before(createdBefore) }

	ctrs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return r, fmt.Errorf("list containers: %w", err)
	}
	for _, c := range ctrs {
		if !old(time.Unix(c.Created, 0)) {
			continue
		}
		name := c.ID[:12]
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		switch {
		case err == nil:
			r.Containers = append(r.Containers, name)
		case cerrdefs.IsNotFound(err):
			// Removed by someone else in the meantime (testcontainers' own cleanup, say).
		default:
			errs = append(errs, fmt.Errorf("remove container %s: %w", name, err))
		}
	}

	nets, err := cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return r, errors.Join(append(errs, fmt.Errorf("list networks: %w", err))...)
	}
	for _, n := range nets {
		if !old(n.Created) {
			continue
		}
		err := cli.NetworkRemove(ctx, n.ID)
		switch {
		case err == nil:
			r.Networks = append(r.Networks, n.Name)
		case cerrdefs.IsNotFound(err):
		default:
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
		}
	}

	imgs, err := cli.ImageList(ctx, image.ListOptions{All: true, Filters: f})
	if err != nil {
		return r, errors.Join(append(errs, fmt.Errorf("list images: %w", err))...)
	}
	for _, im := range imgs {
		if !old(time.Unix(im.Created, 0)) {
			continue
		}
		name := im.ID
		if len(im.RepoTags) > 0 {
			name = strings.Join(im.RepoTags, ",")
		}
		_, err := cli.ImageRemove(ctx, im.ID, image.RemoveOptions{Force: true, PruneChildren: true})
		switch {
		case err == nil:
			r.Images = append(r.Images, name)
		case cerrdefs.IsNotFound(err):
		default:
			errs = append(errs, fmt.Errorf("remove image %s: %w", name, err))
		}
	}
	slices.Sort(r.Containers)
	slices.Sort(r.Networks)
	slices.Sort(r.Images)
	return r, errors.Join(errs...)
}
