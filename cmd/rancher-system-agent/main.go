// Command rancher-system-agent is agenttls's stand-in for the system-agent binary that the
// install script downloads from Rancher's /assets/. It implements only what the registration
// path exercises:
//
//	rancher-system-agent validate-connection FILE   check a downloaded connection info file the
//	                                                way the real agent does; exit 0 or 1
//	rancher-system-agent sentinel                   say it is the stand-in and exit 0
//
// Anything else prints usage and exits 2.
package main

import (
	"fmt"
	"io"
	"os"
)

const name = "agenttls stand-in rancher-system-agent"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usage(stderr)
	}
	switch args[0] {
	case "validate-connection":
		if len(args) != 2 {
			fmt.Fprintf(stderr, "%s: validate-connection takes exactly one FILE argument\n", name)
			return usage(stderr)
		}
		if err := validateConnection(args[1]); err != nil {
			fmt.Fprintf(stderr, "%s: connection info rejected: %v\n", name, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: connection info %s is valid\n", name, args[1])
		return 0
	case "sentinel":
		fmt.Fprintf(stdout, "%s: this is the agenttls stand-in, not the real agent; sentinel has nothing to run\n", name)
		return 0
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\n", name, args[0])
	return usage(stderr)
}

func usage(w io.Writer) int {
	fmt.Fprintf(w, "usage:\n  rancher-system-agent validate-connection FILE\n  rancher-system-agent sentinel\n")
	return 2
}
