package testbed

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

const (
	// controlPort is the harness-private plain-HTTP control API of the emulator and proxies,
	// published on 127.0.0.1 only.
	controlPort = "9090/tcp"
	httpsPort   = "443/tcp"
)

// file is one file copied into a container before it starts (certificates, keys, the script):
// nothing is written to the host, so no key file outlives the run.
type file struct {
	path string
	mode int64
	data []byte
}

// serverSpec is one emulator or proxy container.
type serverSpec struct {
	name    string
	image   string
	network string
	labels  map[string]string
	cmd     []string
	files   []file
	// publishHTTPS also publishes the HTTPS port on 127.0.0.1 (a Rancher stand-in the admin
	// client talks to).
	publishHTTPS bool
}

// startServer starts a server container from the tools image and waits until its control API
// answers. It returns the container even on error so the caller can terminate it.
func startServer(ctx context.Context, s serverSpec) (testcontainers.Container, error) {
	var files []testcontainers.ContainerFile
	for _, f := range s.files {
		files = append(files, testcontainers.ContainerFile{
			Reader: bytes.NewReader(f.data), ContainerFilePath: f.path, FileMode: f.mode,
		})
	}
	ports := []string{"127.0.0.1::" + controlPort}
	if s.publishHTTPS {
		ports = append(ports, "127.0.0.1::"+httpsPort)
	}
	req := testcontainers.ContainerRequest{
		Name:       s.name,
		Image:      s.image,
		Entrypoint: s.cmd[:1],
		Cmd:        s.cmd[1:],
		// A copy: testcontainers adds its own labels to the request's map, and the servers of
		// a testbed start concurrently from one labels map (a shared one crashed the process
		// with concurrent map writes).
		Labels:       maps.Clone(s.labels),
		Networks:     []string{s.network},
		ExposedPorts: ports,
		Files:        files,
	}
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: req, Started: true,
	})
	if err != nil {
		return c, fmt.Errorf("start %s: %w%s", s.name, err, logsOf(ctx, c))
	}
	if err := waitReady(ctx, c, 30*time.Second); err != nil {
		return c, fmt.Errorf("start %s: %w%s", s.name, err, logsOf(ctx, c))
	}
	return c, nil
}

// waitReady polls the control API on its published port until it answers, and fails at once
// if the container exits (a bad flag or certificate) instead of waiting out the timeout.
func waitReady(ctx context.Context, c testcontainers.Container, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	port, err := c.MappedPort(ctx, controlPort)
	if err != nil {
		return fmt.Errorf("control port: %w", err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%s/agenttls/v1/seq", port.Port())
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if st, err := c.State(ctx); err == nil && !st.Running {
			return fmt.Errorf("server exited with code %d before its control API answered", st.ExitCode)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("control API at %s did not answer within %s: %w", url, timeout, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logsOf returns the tail of a failed container's logs, so a start failure says why.
func logsOf(ctx context.Context, c testcontainers.Container) string {
	if c == nil {
		return ""
	}
	rc, err := c.Logs(ctx)
	if err != nil {
		return ""
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 64<<10))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "\ncontainer log tail:\n  " + strings.Join(lines, "\n  ")
}

// endpoint is what the harness needs of a running server: where nodes reach it on the run's
// network, and where the harness reaches its control API on the host.
type endpoint struct {
	IP      string `json:"ip"`
	Control string `json:"control"`
}

func endpointOf(ctx context.Context, c testcontainers.Container, network string) (endpoint, error) {
	insp, err := c.Inspect(ctx)
	if err != nil {
		return endpoint{}, fmt.Errorf("inspect server: %w", err)
	}
	n, ok := insp.NetworkSettings.Networks[network]
	if !ok || n.IPAddress == "" {
		return endpoint{}, fmt.Errorf("server %s has no address on network %s", insp.Name, network)
	}
	port, err := c.MappedPort(ctx, controlPort)
	if err != nil {
		return endpoint{}, fmt.Errorf("control port of %s: %w", insp.Name, err)
	}
	return endpoint{IP: n.IPAddress, Control: fmt.Sprintf("http://127.0.0.1:%s", port.Port())}, nil
}
