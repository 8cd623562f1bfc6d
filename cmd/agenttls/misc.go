package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/agenttls/agenttls/harness/config"
	"github.com/agenttls/agenttls/harness/images"
	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/sweep"
)

// listCmd prints the cells of a scenario without running anything.
func listCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("list", "Prints every cell of a scenario with its labels and the command that runs it alone;\nnothing is started.", exitCodesPlain, stderr)
	scenario := fs.String("scenario", "scenarios/full.yaml", "scenario file")
	shard := fs.String("shard", "", "only part i/n")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	listImages := fs.Bool("images", false, "list the images a run needs instead of the cells")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if *listImages {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "IMAGE\tPER RUN\tMADE BY\tUSED FOR")
		for _, im := range images.List() {
			fmt.Fprintf(tw, "%s\t%v\t%s\t%s\n", im.Repository, im.PerRun, im.Source, im.Purpose)
		}
		return tw.Flush()
	}
	// As run resolves them: a flag, else the environment (AGENTTLS_SCENARIO, AGENTTLS_SHARD),
	// else the default; a path given is relative to the working directory, the default to the
	// repository root.
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	path := *scenario
	if v := os.Getenv("AGENTTLS_SCENARIO"); !given["scenario"] && v != "" {
		path, given["scenario"] = v, true
	}
	if v := os.Getenv("AGENTTLS_SHARD"); !given["shard"] && v != "" {
		*shard = v
	}
	if !given["scenario"] && !filepath.IsAbs(path) {
		root, err := config.FindModuleRoot()
		if err != nil {
			return err
		}
		path = filepath.Join(root, path)
	}
	s, err := matrix.LoadScenario(path)
	if err != nil {
		return err
	}
	i, n, err := matrix.ParseShard(*shard)
	if err != nil {
		return err
	}
	cells, err := matrix.Shard(s.Cells, i, n)
	if err != nil {
		return err
	}
	if len(cells) == 0 {
		return fmt.Errorf("shard %s of the %d cell(s) of %s holds none: give fewer shards than cells", *shard, len(s.Cells), s.File)
	}
	if *asJSON {
		type row struct {
			ID     string      `json:"id"`
			Cell   matrix.Cell `json:"cell"`
			Labels []string    `json:"labels"`
			Run    string      `json:"run"`
		}
		var rows []row
		for _, c := range cells {
			rows = append(rows, row{c.ID(), c, c.Labels(), runOne(c)})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CELL\tLABELS\tRUN ALONE")
	for _, c := range cells {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.ID(), strings.Join(c.Labels(), ","), runOne(c))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%d cell(s) in %s", len(cells), s.File)
	if n > 1 {
		fmt.Fprintf(stdout, " (shard %d/%d)", i, n)
	}
	fmt.Fprintln(stdout, "; filter by label with: make conformance ARGS=\"-label-filter 'mode:strict && path:mitm'\"")
	return nil
}

func runOne(c matrix.Cell) string { return fmt.Sprintf("make conformance CELL='%s'", c.ID()) }

// imagesCmd builds every image a run needs (cached by content).
func imagesCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("images", "Builds (or finds, by content hash) the tools image and the node image every run needs,\nlocally: no registry is used. The node image is built with debootstrap as root, or from\nits Dockerfile with AGENTTLS_NODE_BUILD=dockerfile where a registry is reachable.", exitCodesPlain, stderr)
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if _, err := config.FindModuleRoot(); err != nil {
		return err // the images are built from the repository's sources
	}
	if _, err := images.NodeBuildFromEnv(); err != nil {
		return err
	}
	tools, err := images.Tools(ctx, images.WithProgress(stdout))
	if err != nil {
		return err
	}
	node, err := images.Node(ctx, images.WithProgress(stdout))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tools image: %s\nnode image:  %s\n", tools, node)
	return nil
}

// sweepCmd removes what runs left behind.
func sweepCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("sweep", "Removes the containers, networks and per-run images agenttls runs left in Docker:\none run's (-run-id, the id a run prints) or every run's (-all, running ones included).", exitCodesPlain, stderr)
	runID := fs.String("run-id", "", "remove what this run left")
	all := fs.Bool("all", false, "remove what every agenttls run left (cached tools and node images stay)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	var (
		removed sweep.Removed
		err     error
	)
	switch {
	case *runID != "" && *all:
		return errors.New("give -run-id or -all, not both")
	case *runID != "" && !runIDPattern.MatchString(*runID):
		return fmt.Errorf("-run-id %q is not a run id (lower-case letters, digits and -, as a run prints it)", *runID)
	case *runID != "":
		removed, err = sweep.Sweep(ctx, *runID)
	case *all:
		removed, err = sweep.SweepStale(ctx, 0)
	default:
		return errors.New("give -run-id ID or -all")
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, removed)
	return nil
}
