package main

import (
	"context"
	"errors"
	"io"
)

// reportCmd works with results files.
func reportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("report subcommands are not built yet")
}
