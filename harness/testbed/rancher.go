package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/agenttls/agenttls/harness/config"
	"github.com/agenttls/agenttls/harness/dockerx"
	"github.com/agenttls/agenttls/harness/k3d"
	"github.com/agenttls/agenttls/harness/matrix"
	"github.com/agenttls/agenttls/harness/rancher"
	"github.com/agenttls/agenttls/harness/script"
)

const (
	backendEmulator = config.BackendEmulator
	backendRancher  = config.BackendRancher
	nodesPlain      = config.NodesPlain
	nodesK3d        = config.NodesK3d
	// anyMode keys the servers of the Rancher tier, which serve both modes.
	anyMode matrix.Mode = "any"
)

type rancherOptions struct {
	image     string
	intervals rancher.Intervals
}

// WithRancher makes the testbed the Rancher tier's: one Rancher from image per CA kind the cells
// need (config.RancherImageEmulator stands the agenttls emulator in, with the same admin API),
// each logged into, given server-url, a custom cluster and its registration command; the
// proxies sit in front of the Ranchers. When the image can be neither found nor pulled, the
// testbed starts nothing more and its Description says why in Skip.
func WithRancher(image string, iv rancher.Intervals) Option {
	return func(o *options) error {
		if image == "" {
			return errors.New("WithRancher: no image; give rancher/rancher:<version> or " + config.RancherImageEmulator)
		}
		o.rancher = &rancherOptions{image: image, intervals: iv}
		return nil
	}
}

func (tb *Testbed) logger(o options) func(string, ...any) {
	t0 := time.Now()
	var mu sync.Mutex
	return func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(o.progress, "setup: %5.1fs "+format+"\n", append([]any{time.Since(t0).Seconds()}, a...)...)
	}
}

// probeNodes finds out, for k3d nodes, whether this host allows privileged containers.
func (tb *Testbed) probeNodes(ctx context.Context, base string, labels map[string]string, logf func(string, ...any)) error {
	if tb.Nodes != nodesK3d {
		return nil
	}
	ok, err := k3d.PrivilegedWorks(ctx, base, labels)
	if err != nil {
		return err
	}
	tb.NodesPrivileged = ok
	if !ok {
		logf("k3d nodes: this host refuses privileged containers; nodes get CAP_SYS_ADMIN and the cgroup tree instead")
	}
	return nil
}

// startRancherTier starts the Rancher tier's testbed.
func (tb *Testbed) startRancherTier(ctx context.Context, s *script.Script, cells []matrix.Cell, o options) error {
	logf := tb.logger(o)
	ro := o.rancher
	standIn := ro.image == config.RancherImageEmulator

	// The image first: without it nothing else is worth starting.
	if !standIn {
		if err := rancher.EnsureImage(ctx, ro.image, prefixWriter{o.progress, "setup: "}); err != nil {
			if errors.Is(err, rancher.ErrImageUnavailable) {
				tb.Skip = err.Error()
				logf("rancher tier skipped: %s", tb.Skip)
				return nil
			}
			return err
		}
		logf("rancher image %s present", ro.image)
	}

	g, err := tb.prepare(ctx, o, logf)
	if err != nil {
		return err
	}

	var kinds []matrix.CAKind
	for k := range needs(cells, true) {
		if k.proxy == "" {
			kinds = append(kinds, k.ca)
		}
	}
	slices.Sort(kinds)
	tb.Rancher = map[matrix.CAKind]RancherEndpoint{}
	var served []*script.Script
	var servedMu sync.Mutex
	return both(func() error {
		var wg sync.WaitGroup
		errs := make([]error, len(kinds))
		for i, ca := range kinds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ep, sc, err := tb.startRancher(ctx, ca, g, s, o)
				if err != nil {
					errs[i] = fmt.Errorf("rancher for CA kind %s: %w", ca, err)
					return
				}
				tb.mu.Lock()
				tb.Rancher[ca] = ep
				tb.Servers[serverKey(ca, anyMode, "")] = endpoint{IP: ep.IP}
				tb.mu.Unlock()
				servedMu.Lock()
				served = append(served, sc)
				servedMu.Unlock()
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if err := tb.adoptServedScript(s, served, logf); err != nil {
			return err
		}
		var proxies []serverKeyParts
		for k := range needs(cells, true) {
			if k.proxy != "" {
				proxies = append(proxies, k)
			}
		}
		sortKeys(proxies)
		return tb.startProxies(ctx, g, proxies, " in front of the Rancher(s)")
	}, func() error { return tb.trustImages(ctx, g, cells) })
}

// startRancher starts the Rancher of one CA kind and prepares it for registrations: log in, set
// server-url, note whether agent-tls-mode exists, create the custom cluster, read its
// registration command and wait until Rancher accepts registrations. It also returns the script
// Rancher serves.
func (tb *Testbed) startRancher(ctx context.Context, ca matrix.CAKind, g *ground, s *script.Script, o options) (RancherEndpoint, *script.Script, error) {
	p, l, labels, logf := g.pki, g.leaves, g.labels, g.logf
	ro := o.rancher
	iv := ro.intervals
	root := p.PrivateRoot
	if ca == matrix.CAPublic {
		root = p.PublicRoot
	}
	password := randomHex(12)
	name := fmt.Sprintf("agenttls-%s-rancher-%s", tb.RunID, ca)
	var (
		url, ip string
		err     error
		client  *rancher.Client
	)
	t0 := time.Now()
	if ro.image == config.RancherImageEmulator {
		spec, err := tb.emulatorSpec(g.tools, s, p, l, serverKeyParts{ca: ca, mode: matrix.ModeStrict}, labels, o)
		if err != nil {
			return RancherEndpoint{}, nil, err
		}
		spec.name = name
		spec.standIn(password)
		c, err := startServer(ctx, spec)
		if c != nil {
			tb.track(c)
		}
		if err != nil {
			return RancherEndpoint{}, nil, err
		}
		port, err := c.MappedPort(ctx, httpsPort)
		if err != nil {
			return RancherEndpoint{}, nil, fmt.Errorf("published HTTPS port: %w", err)
		}
		ep, err := endpointOf(ctx, c, tb.Network)
		if err != nil {
			return RancherEndpoint{}, nil, err
		}
		url, ip = "https://127.0.0.1:"+port.Port(), ep.IP
		if client, err = rancher.NewClient(url, rancher.WithRootCAs(root.Pool()), rancher.WithPollInterval(iv.Poll)); err != nil {
			return RancherEndpoint{}, nil, err
		}
	} else {
		leaf := l.rancher(ca)
		opts := []rancher.Option{
			rancher.WithBootstrapPassword(password), rancher.WithTrust(root.Pool()),
			rancher.WithNetwork(tb.Network), rancher.WithLabels(labels), rancher.WithName(name),
			rancher.WithIntervals(iv),
		}
		if o.artifacts != "" {
			opts = append(opts, rancher.WithLogFile(filepath.Join(o.artifacts, "rancher", string(ca)+".log")))
		}
		if cacerts := cacertsFile(p, ca); cacerts != nil {
			opts = append(opts, rancher.WithPrivateCA(leaf.CertPEM, leaf.KeyPEM, cacerts))
		} else {
			opts = append(opts, rancher.WithPublicCA(leaf.CertPEM, leaf.KeyPEM))
		}
		rc, err := rancher.Run(ctx, ro.image, opts...)
		if rc != nil {
			tb.track(rc)
		}
		if err != nil {
			return RancherEndpoint{}, nil, err
		}
		if url, err = rc.URL(ctx); err != nil {
			return RancherEndpoint{}, nil, err
		}
		if ip, err = rc.IP(ctx, tb.Network); err != nil {
			return RancherEndpoint{}, nil, err
		}
		if client, err = rc.Client(ctx); err != nil {
			return RancherEndpoint{}, nil, err
		}
	}
	logf("rancher %s (%s) answers at %s after %.0fs", ca, ro.image, url, time.Since(t0).Seconds())

	if err = client.Login(ctx, password); err != nil {
		return RancherEndpoint{}, nil, err
	}
	if err = client.SetServerURL(ctx, "https://"+tb.Hostname); err != nil {
		return RancherEndpoint{}, nil, err
	}
	hasMode := true
	mode, err := client.AgentTLSMode(ctx)
	switch {
	case errors.Is(err, rancher.ErrNoAgentTLSMode):
		hasMode = false
		logf("rancher %s has no agent-tls-mode setting: the mode axis has no effect on it", ca)
	case err != nil:
		return RancherEndpoint{}, nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, iv.Registration)
	defer cancel()
	cl, err := client.CreateCustomCluster(rctx, "agenttls-"+tb.RunID+"-"+string(ca), "")
	if err != nil {
		return RancherEndpoint{}, nil, err
	}
	rt, err := client.RegistrationToken(rctx, cl.ID)
	if err != nil {
		return RancherEndpoint{}, nil, err
	}
	if err := client.WaitRegistrationReady(rctx, rt.Token, "agenttls-probe-"+tb.RunID); err != nil {
		return RancherEndpoint{}, nil, err
	}
	// Rancher's checksum must be the one the harness computes from the CA it gave Rancher.
	want := ""
	if ca != matrix.CAPublic {
		want = tb.Checksums[ca].Correct
	}
	if got := nodeCommandChecksum(rt.NodeCommand); got != want {
		return RancherEndpoint{}, nil, fmt.Errorf("rancher's nodeCommand carries --ca-checksum %q, but the CA it was given hashes to %q: "+
			"Rancher changed how it serves cacerts, or the harness gave it the wrong file", got, want)
	}
	served, err := script.FromRancher(ctx, url+script.ServedPath, client.HTTPClient())
	if err != nil {
		return RancherEndpoint{}, nil, fmt.Errorf("read the install script rancher serves: %w", err)
	}
	logf("rancher %s ready for registrations: cluster %s (%s), agent-tls-mode %q, %.0fs", ca, cl.Name, cl.ID, mode, time.Since(t0).Seconds())
	lockDir, err := dockerx.LockDir()
	if err != nil {
		return RancherEndpoint{}, nil, err
	}
	lock := filepath.Join(lockDir, "mode-"+tb.RunID+"-"+string(ca))
	return RancherEndpoint{
		URL: url, IP: ip, RootCA: root.CertPEM, AdminToken: client.Token(),
		ClusterName: cl.Name, ClusterID: cl.ID, NodeCommand: rt.NodeCommand,
		HasAgentTLSMode: hasMode, ModeLock: lock, WaitNodeRegistered: iv.NodeRegistered, Poll: iv.Poll,
	}, served, nil
}

var checksumArg = regexp.MustCompile(`--ca-checksum\s+(\S+)`)

func nodeCommandChecksum(cmd string) string {
	m := checksumArg.FindStringSubmatch(cmd)
	if m == nil {
		return ""
	}
	return strings.Trim(m[1], `'"`)
}

// adoptServedScript makes the script the Ranchers serve the one under test: its profile decides
// the oracle's answers, and its preamble says how Rancher assigns STRICT_VERIFY.
func (tb *Testbed) adoptServedScript(loaded *script.Script, served []*script.Script, logf func(string, ...any)) error {
	if len(served) == 0 {
		return nil
	}
	first := served[0]
	for _, s := range served[1:] {
		if s.SHA256 != first.SHA256 || preambleStyleOf(s.Preamble) != preambleStyleOf(first.Preamble) {
			return fmt.Errorf("the Ranchers serve different install scripts (%s vs %s)", first.SHA256[:12], s.SHA256[:12])
		}
	}
	// The served route ends the script with one more newline than the raw file has.
	if !bytes.Equal(bytes.TrimRight(first.Body, "\n"), bytes.TrimRight(loaded.Body, "\n")) {
		logf("rancher serves another install script than %s (sha256 %s, %s profile): the run uses the served one",
			orName(loaded), first.SHA256[:12], first.Profile.Name)
		tb.ScriptVersion, tb.ScriptSource, tb.ScriptSHA256, tb.Profile = "", first.Source, first.SHA256, first.Profile
	}
	if style := preambleStyleOf(first.Preamble); style != tb.Preamble {
		logf("rancher's served preamble assigns STRICT_VERIFY in the %q style (the version table said %q): the oracle follows Rancher", style, tb.Preamble)
		tb.Preamble = style
	}
	return nil
}

func orName(s *script.Script) string {
	if s.Version != "" {
		return "system-agent " + s.Version
	}
	return s.Source
}

// preambleStyleOf reads how a served preamble assigns STRICT_VERIFY: export, quoted or none.
func preambleStyleOf(preamble []byte) string {
	for _, l := range strings.Split(string(preamble), "\n") {
		switch {
		case strings.HasPrefix(l, "export STRICT_VERIFY="):
			return "export"
		case strings.HasPrefix(l, "STRICT_VERIFY="):
			return "quoted"
		}
	}
	return "none"
}

// track remembers a container for Terminate.
func (tb *Testbed) track(c testcontainers.Container) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.containers = append(tb.containers, c)
}

// standIn turns an emulator spec into a Rancher stand-in: admin login with password, no
// server-url (the harness sets it through the API, as with Rancher), HTTPS published on the host
// for the admin client.
func (s *serverSpec) standIn(password string) {
	var cmd []string
	for i := 0; i < len(s.cmd); i++ {
		if s.cmd[i] == "--server-url" || s.cmd[i] == "--agent-tls-mode" {
			i++
			continue
		}
		cmd = append(cmd, s.cmd[i])
	}
	s.cmd = append(cmd, "--bootstrap-password", password)
	s.publishHTTPS = true
}
