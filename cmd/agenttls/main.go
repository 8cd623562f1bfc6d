// Command agenttls runs the conformance matrix of Rancher's node-registration TLS contract and
// works with its results.
//
//	agenttls run      run the cells of a scenario (the main job; `make conformance`)
//	agenttls list     print every cell of a scenario with its labels and its rerun command
//	agenttls images   build (or reuse) every image a run needs
//	agenttls sweep    remove containers, networks and images that runs left behind
//	agenttls report   render, diff, merge and sweep results files (see `agenttls report -h`)
//	agenttls sweep-versions  run the matrix per system-agent version and tabulate the verdicts
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// exitError carries an exit code through the command functions.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "run the cells of a scenario against the real install script", runCmd},
		{"list", "print every cell of a scenario with its labels and the command that runs it alone", listCmd},
		{"images", "build (or reuse) every image a run needs, locally", imagesCmd},
		{"sweep", "remove what agenttls runs left in Docker", sweepCmd},
		{"report", "render, diff, merge and compare results files", reportCmd},
		{"sweep-versions", "run the matrix once per system-agent version and tabulate how verdicts move", sweepVersionsCmd},
	}
}

func main() {
	if _, set := os.LookupEnv("TESTCONTAINERS_RYUK_DISABLED"); !set {
		// The harness labels and sweeps what it creates; Ryuk's image may not be pullable.
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	// Caught for the whole run: a second signal is the command's to handle (run kills the
	// suite on it), not the default death that would leave containers behind.
	// SIGHUP too: a closed terminal must stop the run and its cleanup, not orphan the suite.
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() { cancel(signalCause{<-sigs}) }()
	os.Exit(mainErr(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// signalCause is why a command's context was cancelled: a signal, whose exit code is 128+n.
type signalCause struct{ sig os.Signal }

func (s signalCause) Error() string { return "interrupted by " + s.sig.String() }

// interruptCode is the exit code of a command stopped by a signal: 130 for SIGINT, 143 for
// SIGTERM, 129 for SIGHUP (130 when the cause is not known).
func interruptCode(ctx context.Context) int {
	var sc signalCause
	if errors.As(context.Cause(ctx), &sc) {
		if n, ok := sc.sig.(syscall.Signal); ok {
			return 128 + int(n)
		}
	}
	return 130
}

// Exit codes, the same for every command.
const (
	exitOK         = 0
	exitRegression = 1 // a cell differs from the oracle; report diff: a regression
	exitBadInput   = 2 // refused before anything ran: flags, configuration, files, Docker
	exitSkipped    = 3 // run -fail-on-skip: cells were skipped, nothing was proven for them
)

// The exit codes as each command's -h tells them.
const (
	exitCodesHelp = `
exit codes: 0 done; 1 a cell differs from the oracle, or the suite could not run its cells (report
diff: a regression); 2 refused before anything ran (bad flag, configuration, file or version, no
Docker); 3 cells skipped under run -fail-on-skip; 130/143/129 interrupted (SIGINT/SIGTERM/SIGHUP).`
	exitCodesRun = `
exit codes: 0 every cell as the oracle says; 1 a cell differs from the oracle, or the suite could
not run its cells (see the output); 2 refused before anything ran (bad flag, configuration, file
or version, no Docker); 3 cells skipped under -fail-on-skip; 130/143/129 interrupted (SIGINT/SIGTERM/SIGHUP).`
	exitCodesPlain = `
exit codes: 0 done; 2 refused or failed (bad flag or file, no Docker); 130/143/129 interrupted.`
)

func mainErr(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitBadInput
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			var ee exitError
			switch {
			case err == nil:
				return 0
			case errors.As(err, &ee):
				return ee.code
			case errors.Is(err, flag.ErrHelp):
				return 0
			case ctx.Err() != nil:
				// Interrupted while it was starting (a download, an image build).
				fmt.Fprintf(stderr, "agenttls %s: interrupted: %v\n", c.name, err)
				return interruptCode(ctx)
			default:
				fmt.Fprintf(stderr, "agenttls %s: %v\n", c.name, err)
				return exitBadInput
			}
		}
	}
	fmt.Fprintf(stderr, "agenttls: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitBadInput
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: agenttls <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-15s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `agenttls <command> -h` for its flags. `make` builds this command as bin/agenttls.")
	fmt.Fprintln(w, exitCodesHelp)
}

// newFlags returns a flag set that reports errors instead of exiting; its -h prints what the
// command does, its flags and its exit codes.
func newFlags(name, about, exitCodes string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("agenttls "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: agenttls %s [flags]\n\n%s\n", name, about)
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(stderr, "\nflags:")
			fs.PrintDefaults()
		}
		fmt.Fprintln(stderr, exitCodes)
	}
	return fs
}

// parseFlagsOnly parses args and refuses anything left after the flags: a scenario path given
// without -scenario must not be ignored in favour of the default.
func parseFlagsOnly(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: %s takes flags only (see %s -h)", fs.Args(), fs.Name(), fs.Name())
	}
	return nil
}
