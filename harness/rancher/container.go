package rancher

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/testcontainers/testcontainers-go"
	tcnetwork "github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/agenttls/agenttls/harness/dockerx"
)

// Where Rancher reads a mounted certificate (its paths are fixed).
const (
	CertPath    = "/etc/rancher/ssl/cert.pem"
	KeyPath     = "/etc/rancher/ssl/key.pem"
	CACertsPath = "/etc/rancher/ssl/cacerts.pem"
)

// Ports of the Rancher container.
const (
	HTTPSPort = "443/tcp"
	HTTPPort  = "80/tcp"
)

// DefaultRepository is the image repository of Rancher; the tag is the Rancher version.
const DefaultRepository = "rancher/rancher"

// Image returns the image reference of a Rancher version, e.g. rancher/rancher:v2.15.0.
func Image(version string) string { return DefaultRepository + ":" + version }

// Intervals are the named time bounds of a Rancher's start and of the waits around it; each has
// a configuration name (-harness.<name>) and a default sized for a 2-core machine.
type Intervals struct {
	// Ping (wait-rancher-ping) bounds the start until /ping answers pong over HTTPS.
	Ping time.Duration
	// Ready (wait-rancher-ready) bounds the wait for Rancher's admission webhook, which must
	// run before settings are changed.
	Ready time.Duration
	// Registration (wait-rancher-registration) bounds the wait for a new cluster's id and
	// registration command, and for /v3/connect/agent to accept its token (on 2.13+ Rancher
	// answers 503 until CAPI runs).
	Registration time.Duration
	// NodeRegistered (wait-node-registered) bounds the wait for the machine of a node whose
	// script reported connection info.
	NodeRegistered time.Duration
	// Poll is how often the waits ask again.
	Poll time.Duration
}

// DefaultIntervals: Rancher's chart allows 2 minutes to start, upstream CI waits up to 5 minutes
// for /ping and 5 more for each controller; a cold start on 2 cores takes about 3-6 minutes.
func DefaultIntervals() Intervals {
	return Intervals{Ping: 8 * time.Minute, Ready: 10 * time.Minute, Registration: 10 * time.Minute,
		NodeRegistered: time.Minute, Poll: 2 * time.Second}
}

func (iv Intervals) validate() error {
	for name, d := range map[string]time.Duration{"wait-rancher-ping": iv.Ping, "wait-rancher-ready": iv.Ready,
		"wait-rancher-registration": iv.Registration, "wait-node-registered": iv.NodeRegistered, "poll": iv.Poll} {
		if d <= 0 {
			return fmt.Errorf("interval %s must be positive (got %s)", name, d)
		}
	}
	return nil
}

type options struct {
	cert, key, cacerts []byte
	public, caSet      bool
	password           string
	roots              *x509.CertPool
	network            string
	aliases            []string
	labels             map[string]string
	name               string
	env                map[string]string
	intervals          Intervals
	logFile            string
	extra              []testcontainers.ContainerCustomizer
}

// Option configures Run and Request.
type Option func(*options) error

// WithPrivateCA mounts a certificate from a private CA: cert is the full chain (leaf first), key
// its key, cacerts the CA Rancher serves at /cacerts and whose checksum its commands carry.
func WithPrivateCA(cert, key, cacerts []byte) Option {
	return func(o *options) error {
		if len(cert) == 0 || len(key) == 0 || len(cacerts) == 0 {
			return errors.New("WithPrivateCA: certificate chain, key and cacerts are all needed")
		}
		if o.caSet {
			return errors.New("WithPrivateCA: a CA kind was already chosen; give one of WithPrivateCA and WithPublicCA")
		}
		o.cert, o.key, o.cacerts, o.public, o.caSet = cert, key, cacerts, false, true
		return nil
	}
}

// WithPublicCA mounts a certificate from a CA the nodes already trust and runs Rancher with
// --no-cacerts: /cacerts is empty and commands carry no checksum.
func WithPublicCA(cert, key []byte) Option {
	return func(o *options) error {
		if len(cert) == 0 || len(key) == 0 {
			return errors.New("WithPublicCA: certificate chain and key are both needed")
		}
		if o.caSet {
			return errors.New("WithPublicCA: a CA kind was already chosen; give one of WithPrivateCA and WithPublicCA")
		}
		o.cert, o.key, o.cacerts, o.public, o.caSet = cert, key, nil, true, true
		return nil
	}
}

// WithBootstrapPassword sets CATTLE_BOOTSTRAP_PASSWORD, the admin password of a new Rancher.
func WithBootstrapPassword(pw string) Option {
	return func(o *options) error {
		if len(pw) < 12 {
			// Rancher's minimum password length is 12 by default.
			return errors.New("WithBootstrapPassword: use at least 12 characters (Rancher's minimum password length)")
		}
		o.password = pw
		return nil
	}
}

// WithTrust verifies Rancher's certificate against pool in the readiness wait and in Client.
func WithTrust(pool *x509.CertPool) Option {
	return func(o *options) error { o.roots = pool; return nil }
}

// WithNetwork attaches Rancher to a Docker network with optional aliases.
func WithNetwork(name string, aliases ...string) Option {
	return func(o *options) error {
		if name == "" {
			return errors.New("WithNetwork: empty network name")
		}
		o.network, o.aliases = name, aliases
		return nil
	}
}

// WithLabels adds container labels (pass sweep.Labels(runID)).
func WithLabels(l map[string]string) Option {
	return func(o *options) error {
		if o.labels == nil {
			o.labels = map[string]string{}
		}
		maps.Copy(o.labels, l)
		return nil
	}
}

// WithName sets the container name.
func WithName(name string) Option { return func(o *options) error { o.name = name; return nil } }

// WithEnv adds environment variables. Settings given this way (CATTLE_AGENT_TLS_MODE,
// CATTLE_SERVER_URL) become read-only in Rancher, so the harness does not use them.
func WithEnv(env map[string]string) Option {
	return func(o *options) error {
		if o.env == nil {
			o.env = map[string]string{}
		}
		maps.Copy(o.env, env)
		return nil
	}
}

// WithIntervals sets the named time bounds (DefaultIntervals otherwise).
func WithIntervals(iv Intervals) Option {
	return func(o *options) error {
		if err := iv.validate(); err != nil {
			return fmt.Errorf("WithIntervals: %w", err)
		}
		o.intervals = iv
		return nil
	}
}

// WithLogFile streams Rancher's log into path (created; its folder too) while the container
// runs, so that a failed start or a failed cell has Rancher's side in the artifacts.
func WithLogFile(path string) Option { return func(o *options) error { o.logFile = path; return nil } }

// WithCustomizers passes testcontainers customizers through, applied after the module's own.
func WithCustomizers(c ...testcontainers.ContainerCustomizer) Option {
	return func(o *options) error { o.extra = append(o.extra, c...); return nil }
}

// Container is a running Rancher.
type Container struct {
	testcontainers.Container
	opts    options
	logFile *os.File
	mu      sync.Mutex
}

func resolve(opts []Option) (options, error) {
	o := options{intervals: DefaultIntervals()}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	if !o.caSet {
		return o, errors.New("choose the CA kind: WithPrivateCA (cert.pem, key.pem, cacerts.pem) or WithPublicCA (cert.pem, key.pem, --no-cacerts)")
	}
	if o.password == "" {
		return o, errors.New("give WithBootstrapPassword: without it Rancher makes up a password the harness cannot log in with")
	}
	return o, nil
}

// webhookReady is the readiness command run inside the container: Rancher's admission webhook
// must run before settings change (its kubectl is a link to the embedded k3s).
var webhookReady = []string{"kubectl", "-n", "cattle-system", "rollout", "status", "deployment/rancher-webhook", "--timeout=15s"}

// customizers turns the options into the container request: Rancher's certificate files at its
// fixed paths, --no-cacerts for a public CA, the bootstrap password, privileged mode (Rancher
// refuses to start without it outside Kubernetes), HTTPS published on 127.0.0.1 only, and the
// waits: /ping over verified HTTPS within Ping, then the webhook within Ready.
func (o *options) request() []testcontainers.ContainerCustomizer {
	files := []testcontainers.ContainerFile{
		{Reader: bytes.NewReader(o.cert), ContainerFilePath: CertPath, FileMode: 0o644},
		{Reader: bytes.NewReader(o.key), ContainerFilePath: KeyPath, FileMode: 0o600},
	}
	var args []string
	if o.public {
		args = append(args, "--no-cacerts")
	} else {
		files = append(files, testcontainers.ContainerFile{Reader: bytes.NewReader(o.cacerts), ContainerFilePath: CACertsPath, FileMode: 0o644})
	}
	env := map[string]string{"CATTLE_BOOTSTRAP_PASSWORD": o.password}
	maps.Copy(env, o.env)
	ping := &PingStrategy{Roots: o.roots, Bound: o.intervals.Ping, Poll: o.intervals.Poll}
	ready := wait.ForExec(webhookReady).WithExitCode(0).WithStartupTimeout(o.intervals.Ready).WithPollInterval(o.intervals.Poll)

	c := []testcontainers.ContainerCustomizer{
		testcontainers.WithFiles(files...),
		testcontainers.WithEnv(env),
		testcontainers.WithExposedPorts("127.0.0.1::" + HTTPSPort),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) { hc.Privileged = true }),
		testcontainers.WithWaitStrategy(ping, ready),
	}
	if len(args) > 0 {
		c = append(c, testcontainers.WithCmd(args...))
	}
	if len(o.labels) > 0 {
		c = append(c, testcontainers.WithLabels(o.labels))
	}
	if o.name != "" {
		c = append(c, testcontainers.WithName(o.name))
	}
	if o.network != "" {
		c = append(c, tcnetwork.WithNetworkName(o.aliases, o.network))
	}
	return append(c, o.extra...)
}

// Request returns the container request Run would make for img, without Docker: what the
// module's options turn into (for tests and for -harness.list-images style inspection).
func Request(img string, opts ...Option) (testcontainers.GenericContainerRequest, error) {
	o, err := resolve(opts)
	if err != nil {
		return testcontainers.GenericContainerRequest{}, fmt.Errorf("rancher request: %w", err)
	}
	req := testcontainers.GenericContainerRequest{ContainerRequest: testcontainers.ContainerRequest{Image: img}, Started: true}
	for _, c := range o.request() {
		if err := c.Customize(&req); err != nil {
			return req, fmt.Errorf("rancher request: %w", err)
		}
	}
	return req, nil
}

// Run starts Rancher from img (Image(version)) and waits until it answers /ping over HTTPS and
// its admission webhook runs. As testcontainers modules do, it returns the container even with
// an error whenever one was created: register its termination before checking the error. The
// error of a failed start carries the tail of Rancher's log.
func Run(ctx context.Context, img string, opts ...Option) (*Container, error) {
	o, err := resolve(opts)
	if err != nil {
		return nil, fmt.Errorf("run rancher: %w", err)
	}
	c := &Container{opts: o}
	custom := o.request()
	if o.logFile != "" {
		if err := os.MkdirAll(filepath.Dir(o.logFile), 0o755); err != nil {
			return nil, fmt.Errorf("run rancher: log folder: %w", err)
		}
		f, err := os.Create(o.logFile)
		if err != nil {
			return nil, fmt.Errorf("run rancher: log file: %w", err)
		}
		c.logFile = f
		custom = append(custom, testcontainers.WithLogConsumers(logWriter{c}))
	}
	ctr, err := testcontainers.Run(ctx, img, custom...)
	if ctr != nil {
		c.Container = ctr
	}
	if err != nil {
		if ctr == nil {
			c.closeLog()
			return nil, fmt.Errorf("run rancher %s: %w", img, err)
		}
		return c, fmt.Errorf("run rancher %s: %w%s", img, err, c.tail(context.WithoutCancel(ctx)))
	}
	return c, nil
}

// PingStrategy waits until Rancher answers GET /ping with "pong" over HTTPS on its published port
// on 127.0.0.1, verifying its certificate against Roots (the port is published on 127.0.0.1
// only, whatever host testcontainers would guess). It fails at once when the container exits.
type PingStrategy struct {
	Roots *x509.CertPool
	Bound time.Duration
	Poll  time.Duration
}

var _ wait.StrategyTimeout = (*PingStrategy)(nil)

// Timeout is the strategy's bound.
func (p *PingStrategy) Timeout() *time.Duration { return &p.Bound }

func (p *PingStrategy) String() string { return "GET /ping over HTTPS answers pong" }

// WaitUntilReady implements wait.Strategy.
func (p *PingStrategy) WaitUntilReady(ctx context.Context, target wait.StrategyTarget) error {
	ctx, cancel := context.WithTimeout(ctx, p.Bound)
	defer cancel()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy:           nil,
		TLSClientConfig: &tls.Config{RootCAs: p.Roots, MinVersion: tls.VersionTLS12},
	}}
	defer hc.CloseIdleConnections()
	last := "no answer yet"
	for {
		if st, err := target.State(ctx); err == nil && !st.Running {
			return fmt.Errorf("rancher exited (code %d) before /ping answered; see its log", st.ExitCode)
		}
		if port, err := target.MappedPort(ctx, HTTPSPort); err == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://127.0.0.1:"+port.Port()+"/ping", nil)
			resp, err := hc.Do(req)
			if err == nil {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(b)) == "pong" {
					return nil
				}
				last = fmt.Sprintf("HTTP %d %q", resp.StatusCode, strings.TrimSpace(string(b)))
			} else {
				last = err.Error()
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rancher's /ping did not answer pong within %s (wait-rancher-ping; last: %s)", p.Bound, last)
		case <-time.After(p.Poll):
		}
	}
}

// logWriter copies Rancher's log lines into the container's log file.
type logWriter struct{ c *Container }

func (l logWriter) Accept(lg testcontainers.Log) {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	if l.c.logFile != nil {
		_, _ = l.c.logFile.Write(lg.Content)
	}
}

func (c *Container) closeLog() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.logFile != nil {
		_ = c.logFile.Close()
		c.logFile = nil
	}
}

// tail returns the last lines of Rancher's log, for error messages.
func (c *Container) tail(ctx context.Context) string {
	if c.Container == nil {
		return ""
	}
	rc, err := c.Logs(ctx)
	if err != nil {
		return ""
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	where := ""
	if c.opts.logFile != "" {
		where = " (whole log: " + c.opts.logFile + ")"
	}
	return "\nrancher log tail" + where + ":\n  " + strings.Join(lines, "\n  ")
}

// Terminate stops and removes Rancher and closes its log file.
func (c *Container) Terminate(ctx context.Context, opts ...testcontainers.TerminateOption) error {
	defer c.closeLog()
	if c.Container == nil {
		return nil
	}
	return c.Container.Terminate(ctx, opts...)
}

// URL is Rancher's HTTPS address on the host: https://127.0.0.1:<published port>.
func (c *Container) URL(ctx context.Context) (string, error) {
	p, err := c.MappedPort(ctx, HTTPSPort)
	if err != nil {
		return "", fmt.Errorf("rancher HTTPS port: %w", err)
	}
	return "https://127.0.0.1:" + p.Port(), nil
}

// Client returns an admin API client for this Rancher that verifies its certificate as
// WithTrust said (not logged in yet).
func (c *Container) Client(ctx context.Context, opts ...ClientOption) (*Client, error) {
	u, err := c.URL(ctx)
	if err != nil {
		return nil, err
	}
	base := []ClientOption{WithPollInterval(c.opts.intervals.Poll)}
	if c.opts.roots != nil {
		base = append(base, WithRootCAs(c.opts.roots))
	}
	return NewClient(u, append(base, opts...)...)
}

// Login returns a client logged in with the bootstrap password.
func (c *Container) Login(ctx context.Context) (*Client, error) {
	cl, err := c.Client(ctx)
	if err != nil {
		return nil, err
	}
	if err := cl.Login(ctx, c.opts.password); err != nil {
		return nil, err
	}
	return cl, nil
}

// IP is Rancher's address on a Docker network.
func (c *Container) IP(ctx context.Context, network string) (string, error) {
	in, err := c.Inspect(ctx)
	if err != nil {
		return "", fmt.Errorf("inspect rancher: %w", err)
	}
	if n, ok := in.NetworkSettings.Networks[network]; ok && n.IPAddress != "" {
		return n.IPAddress, nil
	}
	return "", fmt.Errorf("rancher is not attached to network %s", network)
}

// Intervals are the container's time bounds.
func (c *Container) Intervals() Intervals { return c.opts.intervals }

// ErrImageUnavailable: the image is not present locally and cannot be pulled.
var ErrImageUnavailable = errors.New("rancher image unavailable")

// EnsureImage makes img present locally: present already, or pulled now (progress lines go to
// progress). When it can be neither, the error wraps ErrImageUnavailable and says why, so the
// Rancher tier can report its cells as skipped with that reason.
func EnsureImage(ctx context.Context, img string, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	cli, err := dockerx.Client(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	ok, err := dockerx.ImageExists(ctx, cli, img)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	fmt.Fprintf(progress, "pulling %s (about 1.5 GB the first time)\n", img)
	rc, err := cli.ImagePull(ctx, img, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("%w: %s is not present locally and pulling it failed: %v", ErrImageUnavailable, img, err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	last := ""
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("%w: pulling %s: %v", ErrImageUnavailable, img, err)
		}
		if m.Error != nil {
			return fmt.Errorf("%w: pulling %s: %v", ErrImageUnavailable, img, m.Error)
		}
		if m.Status != "" && m.Status != last && m.Progress == nil {
			last = m.Status
			fmt.Fprintf(progress, "pull %s: %s %s\n", img, m.ID, m.Status)
		}
	}
	if ok, err := dockerx.ImageExists(ctx, cli, img); err != nil || !ok {
		return fmt.Errorf("%w: %s is still missing after the pull (%v)", ErrImageUnavailable, img, err)
	}
	return nil
}

// ensure interface conformance at compile time.
var _ testcontainers.LogConsumer = logWriter{}
