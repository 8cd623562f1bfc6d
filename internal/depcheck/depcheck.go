// Package depcheck imports the heavy dependencies together so that `go build ./...` fails the
// moment their versions stop building side by side (k3d's docker/docker pin versus the
// go-archive version testcontainers-go wants).
package depcheck

import (
	_ "github.com/k3d-io/k3d/v5/pkg/client"
	_ "github.com/k3d-io/k3d/v5/pkg/runtimes"
	_ "github.com/testcontainers/testcontainers-go"
	_ "github.com/testcontainers/testcontainers-go/network"
)
