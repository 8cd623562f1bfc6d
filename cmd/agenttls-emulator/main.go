// Command agenttls-emulator serves Rancher's node-registration surface for the hermetic tier:
// HTTPS on --https-listen with the mounted certificate (Rancher's /etc/rancher/ssl paths by
// default), an optional plain-HTTP listener, and the harness-private control API on
// --control-listen. One JSON line per request goes to stdout; lifecycle messages go to stderr.
//
// Exit status: 0 after SIGINT/SIGTERM, 1 when a listener fails, 2 on a bad flag or config.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/agenttls/agenttls/harness/emulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil))
}

// addrs are the bound listener addresses (HTTP is nil when disabled).
type addrs struct{ HTTPS, HTTP, Control net.Addr }

func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(addrs)) int {
	fs := flag.NewFlagSet("agenttls-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		certFile      = fs.String("cert", emulator.DefaultCertFile, "serving certificate chain (PEM, leaf first)")
		keyFile       = fs.String("key", emulator.DefaultKeyFile, "serving private key (PEM)")
		cacertsFile   = fs.String("cacerts", emulator.DefaultCACertsFile, "private CA served at /cacerts (trimmed like Rancher's cacerts setting)")
		noCACerts     = fs.Bool("no-cacerts", false, "the certificate is from a CA the nodes trust: serve no CA, embed no checksum")
		agentTLSMode  = fs.String("agent-tls-mode", emulator.ModeStrict, "initial agent-tls-mode: strict or system-store (changeable on the control API)")
		serverURL     = fs.String("server-url", "", "server-url setting, e.g. https://rancher.agenttls.test (empty: built from each request's Host)")
		installScript = fs.String("install-script", "", "raw system-agent install.sh to serve behind Rancher's preamble")
		assetsDir     = fs.String("assets-dir", "", "directory served under /assets/ (rancher-system-agent-amd64, system-agent-uninstall.sh, ...)")
		preambleStyle = fs.String("preamble-style", string(emulator.StyleExport), "STRICT_VERIFY line: export (Rancher 2.13.7+), quoted (2.8.6-2.13.6) or none (2.8.0-2.8.5)")
		tokenSecret   = fs.String("token-secret", "", "secret keying registration tokens (default $AGENTTLS_TOKEN_SECRET)")
		bootstrapPass = fs.String("bootstrap-password", "", "admin password for the admin API's login (default $CATTLE_BOOTSTRAP_PASSWORD; empty refuses every login)")
		noTLSSetting  = fs.Bool("no-agent-tls-mode-setting", false, "act like Rancher before v2.8.6: no agent-tls-mode setting on the admin API")
		placeholder   = fs.Bool("token-placeholder", false, "registration tokens of the admin API carry {token} in their commands and keep the token in a secret")
		httpsListen   = fs.String("https-listen", ":443", "HTTPS listen address")
		httpListen    = fs.String("http-listen", ":80", "plain-HTTP listen address (/ping, /healthz, /cacerts; the rest redirects to https); empty to disable")
		controlListen = fs.String("control-listen", ":9090", "control API listen address (plain HTTP, keep it off the nodes' network)")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "agenttls-emulator: unexpected arguments %q; everything is set with flags (see -h)\n", fs.Args())
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	fail := func(err error) int {
		fmt.Fprintf(stderr, "agenttls-emulator: %v\n", err)
		return 2
	}

	serving, err := emulator.LoadTLS(emulator.TLSFiles{CertFile: *certFile, KeyFile: *keyFile, CACertsFile: *cacertsFile, NoCACerts: *noCACerts})
	if err != nil {
		return fail(err)
	}
	style, err := emulator.ParsePreambleStyle(*preambleStyle)
	if err != nil {
		return fail(err)
	}
	var script []byte
	if *installScript != "" {
		if script, err = os.ReadFile(*installScript); err != nil {
			return fail(fmt.Errorf("read --install-script: %w", err))
		}
	} else {
		logger.Warn("no --install-script: /system-agent-install.sh will answer 500")
	}
	if *tokenSecret == "" {
		*tokenSecret = os.Getenv("AGENTTLS_TOKEN_SECRET")
	}
	if *bootstrapPass == "" {
		*bootstrapPass = os.Getenv("CATTLE_BOOTSTRAP_PASSWORD")
	}
	emu, err := emulator.New(emulator.Config{
		CACerts:       serving.CACerts,
		AgentTLSMode:  *agentTLSMode,
		ServerURL:     *serverURL,
		InstallScript: script,
		AssetsDir:     *assetsDir,
		PreambleStyle: style,
		TokenSecret:   *tokenSecret,
		AccessLog:     stdout,

		BootstrapPassword:     *bootstrapPass,
		NoAgentTLSModeSetting: *noTLSSetting,
		TokenPlaceholder:      *placeholder,
	})
	if err != nil {
		return fail(err)
	}

	type server struct {
		name string
		srv  *http.Server
		ln   net.Listener
	}
	var servers []server
	closeAll := func() {
		for _, s := range servers {
			s.ln.Close()
		}
	}
	listen := func(name, addr string, h http.Handler, tlsConf *tls.Config) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s listener on %q: %w", name, addr, err)
		}
		if tlsConf != nil {
			ln = tls.NewListener(ln, tlsConf)
		}
		servers = append(servers, server{name, &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		}, ln})
		return nil
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{serving.Certificate}, NextProtos: []string{"h2", "http/1.1"}}
	if err := listen("https", *httpsListen, emu.Handler(), tlsConf); err != nil {
		fmt.Fprintf(stderr, "agenttls-emulator: %v\n", err)
		return 1
	}
	if *httpListen != "" {
		if err := listen("http", *httpListen, emu.HTTPHandler(), nil); err != nil {
			closeAll()
			fmt.Fprintf(stderr, "agenttls-emulator: %v\n", err)
			return 1
		}
	}
	if err := listen("control", *controlListen, emu.ControlHandler(), nil); err != nil {
		closeAll()
		fmt.Fprintf(stderr, "agenttls-emulator: %v\n", err)
		return 1
	}

	var a addrs
	for _, s := range servers {
		switch s.name {
		case "https":
			a.HTTPS = s.ln.Addr()
		case "http":
			a.HTTP = s.ln.Addr()
		case "control":
			a.Control = s.ln.Addr()
		}
	}
	info := emu.Info()
	logger.Info("agenttls emulator serving", "https", a.HTTPS, "http", a.HTTP, "control", a.Control,
		"agentTLSMode", info.AgentTLSMode, "serverURL", info.ServerURL, "preambleStyle", info.PreambleStyle,
		"caChecksum", info.Checksum, "cacertsBytes", info.CACertsBytes,
		"adminLogin", *bootstrapPass != "", "agentTLSModeSetting", !*noTLSSetting)
	if ready != nil {
		ready(a)
	}

	errc := make(chan error, len(servers))
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s listener: %w", s.name, err)
			}
		}()
	}
	code := 0
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-errc:
		fmt.Fprintf(stderr, "agenttls-emulator: %v\n", err)
		code = 1
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.srv.Shutdown(shutdownCtx)
	}
	wg.Wait()
	return code
}
