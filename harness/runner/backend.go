package runner

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/agenttls/agenttls/harness/classify"
	"github.com/agenttls/agenttls/harness/command"
	"github.com/agenttls/agenttls/harness/emulator"
	"github.com/agenttls/agenttls/harness/emulator/accesslog"
	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/proxy"
	"github.com/agenttls/agenttls/harness/rancher"
	"github.com/agenttls/agenttls/harness/testbed"
)

// Backend is what differs between the tiers for one cell: where the registration command comes
// from, how the server is put in the cell's agent-tls-mode, and what the server side recorded.
// Everything else (nodes, the command's changes, streaming, classification, reports) is shared.
type Backend interface {
	// NodeCommand is the registration command as the server renders it, before the cell's
	// changes.
	NodeCommand(c matrix.Cell, t testbed.Target) (string, error)
	// Hold puts the server in the cell's agent-tls-mode and keeps it there until release is
	// called (other cells of the same mode may run meanwhile).
	Hold(ctx context.Context, c matrix.Cell) (release func(), err error)
	// Mark notes where the server-side records stand before the script runs.
	Mark(ctx context.Context, t testbed.Target) (Mark, error)
	// Evidence reads what the server side recorded for the cell since m. registeredLine says
	// whether the script reported connection info (the server may then need a moment).
	Evidence(ctx context.Context, c matrix.Cell, t testbed.Target, m Mark, n Node, nodeIP string, registeredLine bool) (classify.ServerView, error)
}

// Mark is where the server's and the proxy's records stood.
type Mark struct {
	Server, Proxy uint64
}

// NewBackend returns the backend of testbed d's tier.
func NewBackend(d *testbed.Description) (Backend, error) {
	if d.Backend != "rancher" {
		return hermetic{d: d}, nil
	}
	b := &rancherTier{d: d, clients: map[matrix.CAKind]*rancher.Client{}, locks: map[matrix.CAKind]*modeLock{}}
	for ca, ep := range d.Rancher {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ep.RootCA) {
			return nil, fmt.Errorf("rancher %s: the testbed's root CA holds no certificate", ca)
		}
		opts := []rancher.ClientOption{rancher.WithRootCAs(pool), rancher.WithToken(ep.AdminToken)}
		if ep.Poll > 0 {
			opts = append(opts, rancher.WithPollInterval(ep.Poll))
		}
		c, err := rancher.NewClient(ep.URL, opts...)
		if err != nil {
			return nil, err
		}
		b.clients[ca] = c
		b.locks[ca] = &modeLock{path: ep.ModeLock}
	}
	return b, nil
}

// hermetic is the emulator tier: one emulator per CA kind and mode, a token per cell minted with
// the run's secret, and the emulator's and proxies' own records.
type hermetic struct{ d *testbed.Description }

func (h hermetic) NodeCommand(c matrix.Cell, t testbed.Target) (string, error) {
	served := ""
	if c.CA != matrix.CAPublic {
		served = t.Checksums.Correct
	}
	return command.NodeCommand(t.ServerURL, h.d.Token(c), served, nil), nil
}

func (h hermetic) Hold(context.Context, matrix.Cell) (func(), error) { return func() {}, nil }

func (h hermetic) Mark(ctx context.Context, t testbed.Target) (Mark, error) {
	var m Mark
	var err error
	if m.Server, err = (&accesslog.Client{BaseURL: t.Emulator}).Seq(ctx); err != nil {
		return m, fmt.Errorf("emulator: %w", err)
	}
	if t.Proxy != "" {
		if m.Proxy, err = (&accesslog.Client{BaseURL: t.Proxy}).Seq(ctx); err != nil {
			return m, fmt.Errorf("proxy: %w", err)
		}
	}
	return m, nil
}

func (h hermetic) Evidence(ctx context.Context, c matrix.Cell, t testbed.Target, m Mark, _ Node, nodeIP string, _ bool) (classify.ServerView, error) {
	emu := &accesslog.Client{BaseURL: t.Emulator}
	sv := classify.ServerView{RequestsCounted: true}
	var regs emulator.RegistrationList
	q := url.Values{"name": {c.Slug()}, "since": {strconv.FormatUint(m.Server, 10)}}
	if err := emu.Do(ctx, "GET", emulator.PathRegistrations+"?"+q.Encode(), nil, &regs); err != nil {
		return sv, err
	}
	for _, r := range regs.Registrations {
		sv.Registrations = append(sv.Registrations, classify.Registration{InterceptedBy: r.InterceptedBy})
	}
	// Requests the node made: straight to the emulator (direct path) or to the proxy.
	client, since := emu, m.Server
	if t.Proxy != "" {
		client, since = &accesslog.Client{BaseURL: t.Proxy}, m.Proxy
	}
	n, err := countRequests(ctx, client, nodeIP, since)
	sv.Requests = n
	return sv, err
}

// countRequests counts the requests the node made, without the command's own download of the
// script: the strict abort must come before any request the script makes.
func countRequests(ctx context.Context, c *accesslog.Client, nodeIP string, since uint64) (int, error) {
	reqs, err := c.Requests(ctx, nodeIP, since)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range reqs.Requests {
		if r.Path != scriptPath {
			n++
		}
	}
	return n, nil
}

// rancherTier is the Rancher tier: one Rancher per CA kind with the mode switched through its
// admin API between cell groups, the nodeCommand Rancher rendered, and as evidence the machine
// Rancher shows for the node's CATTLE_ID.
type rancherTier struct {
	d       *testbed.Description
	clients map[matrix.CAKind]*rancher.Client
	locks   map[matrix.CAKind]*modeLock
}

func (r *rancherTier) NodeCommand(c matrix.Cell, _ testbed.Target) (string, error) {
	ep, ok := r.d.Rancher[c.CA]
	if !ok || ep.NodeCommand == "" {
		return "", fmt.Errorf("no registration command from the Rancher of CA kind %s", c.CA)
	}
	return ep.NodeCommand, nil
}

// Hold shares the Rancher's current mode with the other cells of that mode, or switches it when
// no cell of the other mode runs (see modeLock).
func (r *rancherTier) Hold(ctx context.Context, c matrix.Cell) (func(), error) {
	ep := r.d.Rancher[c.CA]
	if !ep.HasAgentTLSMode {
		return func() {}, nil
	}
	cl, lk := r.clients[c.CA], r.locks[c.CA]
	want := string(c.Mode)
	release, err := lk.hold(ctx, func(ctx context.Context) (bool, error) {
		m, err := cl.AgentTLSMode(ctx)
		return m == want, err
	}, func(ctx context.Context) error {
		if _, err := cl.SwitchAgentTLSMode(ctx, want); err != nil {
			return err
		}
		return r.waitServed(ctx, cl, want)
	})
	if err != nil {
		return nil, fmt.Errorf("put rancher %s in agent-tls-mode %s: %w", c.CA, want, err)
	}
	return release, nil
}

// waitServed waits until the script Rancher serves reflects the mode (Rancher reads the setting
// from a cache that follows the change within moments).
func (r *rancherTier) waitServed(ctx context.Context, cl *rancher.Client, mode string) error {
	if r.d.Preamble == "none" {
		return nil
	}
	want := "false"
	if mode == rancher.ModeStrict {
		want = "true"
	}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, cl.URL()+scriptPath, nil)
		if err != nil {
			return err
		}
		resp, err := cl.HTTPClient().Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if strictVerifyOf(b) == want {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the served script does not show STRICT_VERIFY=%s yet: %w", want, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// strictVerifyOf reads the STRICT_VERIFY value of a served script's preamble.
func strictVerifyOf(script []byte) string {
	for _, l := range bytes.Split(script, []byte("\n")) {
		s := strings.TrimPrefix(string(l), "export ")
		if v, ok := strings.CutPrefix(s, "STRICT_VERIFY="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

func (r *rancherTier) Mark(ctx context.Context, t testbed.Target) (Mark, error) {
	var m Mark
	if t.Proxy != "" {
		var err error
		if m.Proxy, err = (&accesslog.Client{BaseURL: t.Proxy}).Seq(ctx); err != nil {
			return m, fmt.Errorf("proxy: %w", err)
		}
	}
	return m, nil
}

// cattleIDPath is where the install script keeps the node's CATTLE_ID.
const cattleIDPath = "/etc/rancher/agent/cattle-id"

// Evidence: the node's CATTLE_ID (the script writes it before it asks for connection info) and
// the machine Rancher shows for it in the cell's cluster. Through a proxy, the proxy's log says
// whether the registration call went through it; Rancher's own requests cannot be counted, so on
// the direct path RequestsCounted is false.
func (r *rancherTier) Evidence(ctx context.Context, c matrix.Cell, t testbed.Target, m Mark, n Node, nodeIP string, registeredLine bool) (classify.ServerView, error) {
	sv := classify.ServerView{}
	var via string
	if t.Proxy != "" {
		px := &accesslog.Client{BaseURL: t.Proxy}
		reqs, err := px.Requests(ctx, nodeIP, m.Proxy)
		if err != nil {
			return sv, fmt.Errorf("proxy: %w", err)
		}
		for _, e := range reqs.Requests {
			if e.Path != scriptPath {
				sv.Requests++
			}
			if e.Path == "/v3/connect/agent" && e.Status == http.StatusOK {
				via = interceptMode(c.Path)
			}
		}
		sv.RequestsCounted = true
	}
	var out bytes.Buffer
	if _, err := n.ExecStream(ctx, []string{"sh", "-c", "cat " + cattleIDPath + " 2>/dev/null || true"}, &out, nil); err != nil {
		return sv, fmt.Errorf("read the node's CATTLE_ID: %w", err)
	}
	id := strings.TrimSpace(out.String())
	if id == "" {
		return sv, nil // the script never got as far as asking Rancher
	}
	ep, cl := r.d.Rancher[c.CA], r.clients[c.CA]
	var ms []rancher.Machine
	if registeredLine {
		wctx, cancel := context.WithTimeout(ctx, ep.WaitNodeRegistered)
		defer cancel()
		m, err := cl.WaitMachine(wctx, id)
		switch {
		case err == nil:
			ms = []rancher.Machine{*m}
		case errors.Is(err, context.DeadlineExceeded):
			// No machine: the classifier reports a success line without a registration.
		default:
			return sv, err
		}
	} else {
		var err error
		if ms, err = cl.Machines(ctx, id); err != nil {
			return sv, err
		}
	}
	for _, m := range ms {
		if m.Cluster == ep.ClusterName {
			sv.Registrations = append(sv.Registrations, classify.Registration{InterceptedBy: via})
		}
	}
	return sv, nil
}

// interceptMode is the mode of the proxy on path p, as the proxies name it.
func interceptMode(p matrix.Path) string {
	switch p {
	case matrix.PathMITM, matrix.PathMITMTrusted:
		return string(proxy.MITM)
	case matrix.PathDirect:
		return ""
	}
	return string(proxy.Tamper)
}
