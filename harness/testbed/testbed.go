// Package testbed starts everything one hermetic run shares: a labelled Docker network, the
// Rancher emulators (one per CA kind and agent-tls-mode the cells need), the interception
// proxies in front of them, and node images whose system trust store matches each cell. It hands
// out, per cell, where the node must resolve the Rancher hostname and which node image to use.
//
// One process starts a testbed (Run); other processes of a parallel run attach to it through
// its Description, which is plain JSON.
package testbed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"

	"github.com/agenttls/agenttls/harness/command"
	"github.com/agenttls/agenttls/harness/images"
	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/pki"
	"github.com/agenttls/agenttls/harness/script"
	"github.com/agenttls/agenttls/harness/sweep"
)

// Description is what any process needs to run cells against a started testbed.
type Description struct {
	RunID       string `json:"runId"`
	Network     string `json:"network"`
	Hostname    string `json:"hostname"`
	TokenSecret string `json:"tokenSecret"`
	// Servers maps a server key (see serverKey) to its endpoint.
	Servers map[string]endpoint `json:"servers"`
	// NodeImages maps a trust profile (see trustKey) to a node image.
	NodeImages map[string]string `json:"nodeImages"`
	// Checksums maps a CA kind to the values of its checksum axis.
	Checksums map[matrix.CAKind]command.Checksums `json:"checksums"`
	// Script is the install script under test (no body).
	ScriptVersion string         `json:"scriptVersion"`
	ScriptSource  string         `json:"scriptSource"`
	ScriptSHA256  string         `json:"scriptSha256"`
	Profile       script.Profile `json:"profile"`
	Preamble      string         `json:"preamble"`

	// Backend is config.BackendEmulator (hermetic) or config.BackendRancher.
	Backend string `json:"backend"`
	// Rancher holds, in the Rancher tier, the Rancher of each CA kind.
	Rancher map[matrix.CAKind]RancherEndpoint `json:"rancher,omitempty"`
	// Skip, when set, is why this tier cannot run here (the Rancher image cannot be obtained):
	// every cell is reported skipped with it.
	Skip string `json:"skip,omitempty"`
	// Nodes is the node provider (config.NodesPlain or config.NodesK3d); NodesPrivileged says
	// whether k3d nodes may run privileged on this host.
	Nodes           string `json:"nodes"`
	NodesPrivileged bool   `json:"nodesPrivileged"`
}

// RancherEndpoint is one running Rancher of the Rancher tier and what the runner needs of it.
type RancherEndpoint struct {
	// URL is its HTTPS address on the host (https://127.0.0.1:<port>); IP its address on the
	// run's network.
	URL string `json:"url"`
	IP  string `json:"ip"`
	// RootCA (PEM) verifies its certificate; AdminToken is the logged-in API token.
	RootCA     []byte `json:"rootCA"`
	AdminToken string `json:"adminToken"`
	// Cluster is the custom cluster the nodes join, with its registration command as Rancher
	// renders it.
	ClusterName string `json:"clusterName"`
	ClusterID   string `json:"clusterId"`
	NodeCommand string `json:"nodeCommand"`
	// HasAgentTLSMode is false on Rancher versions without the setting.
	HasAgentTLSMode bool `json:"hasAgentTLSMode"`
	// ModeLock is the file the processes lock to share or switch agent-tls-mode.
	ModeLock string `json:"modeLock"`
	// WaitNodeRegistered bounds the wait for a machine; Poll is the waits' interval.
	WaitNodeRegistered time.Duration `json:"waitNodeRegistered"`
	Poll               time.Duration `json:"poll"`
}

// Target is where one cell runs.
type Target struct {
	// ServerURL is https://<hostname>, the same on every path.
	ServerURL string
	// HostIP is the address the node resolves the hostname to: the emulator, or a proxy.
	HostIP string
	// NodeImage has the system trust store this cell needs.
	NodeImage string
	// Emulator is the control API of the Rancher emulator behind the path; Proxy is the proxy's
	// (empty on the direct path).
	Emulator string
	Proxy    string
	// Checksums are the values of the checksum axis for the cell's CA kind.
	Checksums command.Checksums
}

// For returns the target of cell c, or an error if the testbed was not started for it.
func (d *Description) For(c matrix.Cell) (Target, error) {
	var t Target
	mode := c.Mode
	if d.Backend == backendRancher {
		// One Rancher per CA kind serves both modes (switched between cell groups), and so does
		// each proxy in front of it.
		r, ok := d.Rancher[c.CA]
		if !ok {
			return Target{}, fmt.Errorf("testbed has no Rancher for CA kind %s: start it with the cell's scenario", c.CA)
		}
		mode = anyMode
		t = Target{ServerURL: "https://" + d.Hostname, HostIP: r.IP, Checksums: d.Checksums[c.CA]}
	} else {
		emu, ok := d.Servers[serverKey(c.CA, c.Mode, "")]
		if !ok {
			return Target{}, fmt.Errorf("testbed has no emulator for %s/%s: start it with the cell's scenario", c.CA, c.Mode)
		}
		t = Target{ServerURL: "https://" + d.Hostname, HostIP: emu.IP, Emulator: emu.Control, Checksums: d.Checksums[c.CA]}
	}
	if c.Path != matrix.PathDirect {
		px, ok := d.Servers[serverKey(c.CA, mode, proxyKind(c.Path))]
		if !ok {
			return Target{}, fmt.Errorf("testbed has no %s proxy for %s/%s", c.Path, c.CA, c.Mode)
		}
		t.HostIP, t.Proxy = px.IP, px.Control
	}
	img, ok := d.NodeImages[trustKey(c)]
	if !ok {
		return Target{}, fmt.Errorf("testbed has no node image for trust profile %q", trustKey(c))
	}
	t.NodeImage = img
	return t, nil
}

// Token returns the registration token for cell c.
func (d *Description) Token(c matrix.Cell) string { return cellToken(d.TokenSecret, c.Slug()) }

// Testbed is a started testbed owned by this process.
type Testbed struct {
	Description
	PKI        *pki.PKI
	network    *testcontainers.DockerNetwork
	containers []testcontainers.Container
	keep       bool
	mu         sync.Mutex
}

type options struct {
	runID     string
	hostname  string
	preamble  string
	keep      bool
	progress  io.Writer
	nodeImage string
	nodes     string
	artifacts string
	rancher   *rancherOptions
}

// WithNodes chooses the node provider the runner uses: "plain" (default) or "k3d". For k3d the
// testbed finds out whether this host allows privileged containers.
func WithNodes(provider string) Option {
	return func(o *options) error {
		switch provider {
		case nodesPlain, nodesK3d:
			o.nodes = provider
			return nil
		}
		return fmt.Errorf("node provider %q: use %s or %s", provider, nodesPlain, nodesK3d)
	}
}

// WithArtifacts is where the testbed writes its servers' logs (Rancher's in the Rancher tier).
func WithArtifacts(dir string) Option {
	return func(o *options) error { o.artifacts = dir; return nil }
}

// Option configures Run.
type Option func(*options) error

// WithRunID sets the run id every resource is labelled with.
func WithRunID(id string) Option { return func(o *options) error { o.runID = id; return nil } }

// WithHostname sets the Rancher hostname (default rancher.agenttls.test).
func WithHostname(h string) Option { return func(o *options) error { o.hostname = h; return nil } }

// WithPreamble sets the served preamble style: export, quoted or none.
func WithPreamble(style string) Option {
	return func(o *options) error {
		switch style {
		case "export", "quoted", "none":
			o.preamble = style
			return nil
		}
		return fmt.Errorf("preamble style %q: use export, quoted or none", style)
	}
}

// WithKeep leaves the containers running after Terminate (debugging).
func WithKeep(keep bool) Option { return func(o *options) error { o.keep = keep; return nil } }

// WithProgress receives one line per setup step.
func WithProgress(w io.Writer) Option { return func(o *options) error { o.progress = w; return nil } }

// Run starts a testbed for cells running script s. It returns the testbed even on error, so
// the caller can Terminate what was started; register that before checking the error.
func Run(ctx context.Context, s *script.Script, cells []matrix.Cell, opts ...Option) (*Testbed, error) {
	o := options{hostname: "rancher.agenttls.test", preamble: "export", progress: io.Discard, nodes: nodesPlain}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("testbed: %w", err)
		}
	}
	if o.runID == "" {
		o.runID = NewRunID()
	}
	tb := &Testbed{keep: o.keep}
	tb.RunID, tb.Hostname, tb.Preamble = o.runID, o.hostname, o.preamble
	tb.ScriptVersion, tb.ScriptSource, tb.ScriptSHA256, tb.Profile = s.Version, s.Source, s.SHA256, s.Profile
	tb.TokenSecret = randomHex(16)
	tb.Servers = map[string]endpoint{}
	tb.NodeImages = map[string]string{}
	tb.Nodes = o.nodes
	tb.Backend = backendEmulator
	start := tb.start
	if o.rancher != nil {
		tb.Backend = backendRancher
		start = tb.startRancherTier
	}
	if err := start(ctx, s, cells, o); err != nil {
		return tb, fmt.Errorf("start testbed %s: %w", tb.RunID, err)
	}
	return tb, nil
}

// ground is what both tiers start from: the images, the run's PKI and leaf certificates, the
// checksums of every CA kind, the labelled network and the setup logger.
type ground struct {
	tools, base string
	pki         *pki.PKI
	leaves      leafSet
	labels      map[string]string
	logf        func(string, ...any)
}

// prepare builds (or finds) the images, makes the PKI and the network, and probes the node
// provider. The Rancher tier checks its image before calling it, so that a missing Rancher image
// costs nothing else.
func (tb *Testbed) prepare(ctx context.Context, o options, logf func(string, ...any)) (*ground, error) {
	g := &ground{labels: sweep.Labels(tb.RunID), logf: logf}

	// Images: the tools image and the node image are independent (the node image takes about a
	// minute the first time on a machine, then it is cached). The images package prefixes its
	// own lines with the image they are about.
	err := both(
		func() (err error) { g.tools, err = images.Tools(ctx); return err },
		func() (err error) {
			g.base, err = images.Node(ctx, images.WithProgress(prefixWriter{o.progress, "setup: "}))
			return err
		})
	if err != nil {
		return nil, err
	}
	logf("images ready: %s, %s", g.tools, g.base)

	if g.pki, err = pki.New(); err != nil {
		return nil, err
	}
	tb.PKI = g.pki
	if g.leaves, err = tb.leaves(g.pki); err != nil {
		return nil, err
	}
	tb.Checksums = map[matrix.CAKind]command.Checksums{}
	for _, ca := range []matrix.CAKind{matrix.CAPrivate, matrix.CAPublic, matrix.CAPrivateBundle} {
		tb.Checksums[ca] = command.Checksums{
			Correct: sha256Hex(pki.CACertsServed(pki.Setting(cacertsFile(g.pki, ca)))),
			Wrong:   pki.Checksum(g.pki.StaleRoot.CertPEM),
		}
	}

	net, err := tcnetwork.New(ctx, tcnetwork.WithLabels(g.labels))
	if err != nil {
		return nil, fmt.Errorf("create network: %w", err)
	}
	tb.network = net
	tb.Network = net.Name
	logf("network %s", net.Name)
	if err := tb.probeNodes(ctx, g.base, g.labels, logf); err != nil {
		return nil, err
	}
	return g, nil
}

// start starts the hermetic tier's testbed: one emulator per CA kind and mode, the proxies in
// front of them and the node images, the servers and the images concurrently.
func (tb *Testbed) start(ctx context.Context, s *script.Script, cells []matrix.Cell, o options) error {
	g, err := tb.prepare(ctx, o, tb.logger(o))
	if err != nil {
		return err
	}
	var emus, proxies []serverKeyParts
	for k := range needs(cells, false) {
		if k.proxy == "" {
			emus = append(emus, k)
		} else {
			proxies = append(proxies, k)
		}
	}
	sortKeys(emus)
	sortKeys(proxies)
	return both(func() error {
		if err := tb.parallel(ctx, emus, func(ctx context.Context, k serverKeyParts) (serverSpec, error) {
			return tb.emulatorSpec(g.tools, s, g.pki, g.leaves, k, g.labels, o)
		}); err != nil {
			return err
		}
		g.logf("%d emulator(s) up", len(emus))
		return tb.startProxies(ctx, g, proxies, "")
	}, func() error { return tb.trustImages(ctx, g, cells) })
}

// startProxies starts the interception proxies of keys, in front of the servers already up.
func (tb *Testbed) startProxies(ctx context.Context, g *ground, keys []serverKeyParts, where string) error {
	if err := tb.parallel(ctx, keys, func(ctx context.Context, k serverKeyParts) (serverSpec, error) {
		return tb.proxySpec(g.tools, g.pki, g.leaves, k, g.labels)
	}); err != nil {
		return err
	}
	g.logf("%d proxy(ies) up%s", len(keys), where)
	return nil
}

// trustImages prepares one node image per system trust store the cells need.
func (tb *Testbed) trustImages(ctx context.Context, g *ground, cells []matrix.Cell) error {
	trusts := map[string]map[string][]byte{}
	for _, c := range cells {
		trusts[trustKey(c)] = trustRoots(g.pki, c)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for k, roots := range trusts {
		if len(roots) == 0 {
			tb.mu.Lock()
			tb.NodeImages[k] = g.base
			tb.mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, err := images.TrustVariant(ctx, g.base, roots, g.labels)
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("node image for %s: %w", k, err))
				mu.Unlock()
				return
			}
			tb.mu.Lock()
			tb.NodeImages[k] = img
			tb.mu.Unlock()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	g.logf("node images ready for trust profiles %s", strings.Join(slices.Sorted(maps.Keys(tb.NodeImages)), ", "))
	return nil
}

// both runs a and b concurrently and joins their errors.
func both(a, b func() error) error {
	var errB error
	done := make(chan struct{})
	go func() { defer close(done); errB = b() }()
	errA := a()
	<-done
	return errors.Join(errA, errB)
}

// prefixWriter prefixes every line written through it.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if _, err := fmt.Fprintln(p.w, p.prefix+line); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// parallel starts one server per key concurrently.
func (tb *Testbed) parallel(ctx context.Context, keys []serverKeyParts, spec func(context.Context, serverKeyParts) (serverSpec, error)) error {
	var wg sync.WaitGroup
	errs := make([]error, len(keys))
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := spec(ctx, k)
			if err != nil {
				errs[i] = err
				return
			}
			c, err := startServer(ctx, s)
			if c != nil {
				tb.mu.Lock()
				tb.containers = append(tb.containers, c)
				tb.mu.Unlock()
			}
			if err != nil {
				errs[i] = err
				return
			}
			ep, err := endpointOf(ctx, c, tb.Network)
			if err != nil {
				errs[i] = err
				return
			}
			tb.mu.Lock()
			tb.Servers[k.String()] = ep
			tb.mu.Unlock()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Terminate removes every container and the network of the testbed (unless kept).
func (tb *Testbed) Terminate(ctx context.Context) error {
	if tb == nil || tb.keep {
		return nil
	}
	var errs []error
	for _, c := range tb.containers {
		if err := testcontainers.TerminateContainer(c); err != nil {
			errs = append(errs, err)
		}
	}
	if tb.network != nil {
		if err := tb.network.Remove(ctx); err != nil {
			errs = append(errs, fmt.Errorf("remove network %s: %w", tb.Network, err))
		}
	}
	// Whatever else carries the run's label: node trust images, and nodes or networks a crashed
	// process could not remove.
	if _, err := sweep.Sweep(ctx, tb.RunID); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// NewRunID returns a short random run id.
func NewRunID() string { return "r" + randomHex(5) }

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
