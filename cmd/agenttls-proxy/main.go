// Command agenttls-proxy runs one interception proxy of the hermetic tier in front of the
// emulator: mode mitm (forged certificate, its own /cacerts) or mode tamper (Rancher's real
// certificate, /cacerts bytes changed by --tamper). Its own request log is on the control API.
// One JSON line per request goes to stdout; lifecycle messages go to stderr.
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

	"github.com/agenttls/agenttls/harness/proxy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(public, control net.Addr)) int {
	fs := flag.NewFlagSet("agenttls-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		mode          = fs.String("mode", "", "mitm (forged certificate, own /cacerts) or tamper (real certificate, /cacerts changed)")
		certFile      = fs.String("cert", "", "certificate chain to present (mitm: forged by the attacker CA; tamper: Rancher's own)")
		keyFile       = fs.String("key", "", "private key of --cert")
		cacertsBody   = fs.String("cacerts-body", "", "file whose bytes are served at /cacerts (mitm: the attacker root; tamper swap: another CA)")
		tamper        = fs.String("tamper", "", "tamper mode only: swap, garbage or empty")
		upstream      = fs.String("upstream", "", "real server, e.g. https://emulator:443")
		upstreamCA    = fs.String("upstream-ca", "", "PEM the upstream certificate must chain to (default: upstream not verified)")
		upstreamName  = fs.String("upstream-server-name", "", "name to verify on the upstream certificate and send as SNI (default: host of --upstream)")
		listenAddr    = fs.String("listen", ":443", "HTTPS listen address")
		controlListen = fs.String("control-listen", ":9090", "control API listen address (plain HTTP)")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "agenttls-proxy: %v\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("unexpected arguments %q; everything is set with flags (see -h)", fs.Args()))
	}
	if *certFile == "" || *keyFile == "" {
		return fail(errors.New("--cert and --key are required: the certificate this proxy presents to nodes"))
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return fail(fmt.Errorf("load --cert %q with --key %q: %w", *certFile, *keyFile, err))
	}
	cfg := proxy.Config{
		Mode:               proxy.Mode(*mode),
		Upstream:           *upstream,
		UpstreamServerName: *upstreamName,
		Tamper:             proxy.Tampering(*tamper),
		AccessLog:          stdout,
	}
	if *cacertsBody != "" {
		if cfg.CACertsBody, err = os.ReadFile(*cacertsBody); err != nil {
			return fail(fmt.Errorf("read --cacerts-body: %w", err))
		}
	}
	if *upstreamCA != "" {
		if cfg.UpstreamCA, err = os.ReadFile(*upstreamCA); err != nil {
			return fail(fmt.Errorf("read --upstream-ca: %w", err))
		}
	}
	p, err := proxy.New(cfg)
	if err != nil {
		return fail(err)
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	pubLn, err := net.Listen("tcp", *listenAddr)
	if err != nil {
		fmt.Fprintf(stderr, "agenttls-proxy: listen on %q: %v\n", *listenAddr, err)
		return 1
	}
	ctlLn, err := net.Listen("tcp", *controlListen)
	if err != nil {
		pubLn.Close()
		fmt.Fprintf(stderr, "agenttls-proxy: control listener on %q: %v\n", *controlListen, err)
		return 1
	}
	errorLog := slog.NewLogLogger(logger.Handler(), slog.LevelDebug)
	pub := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errorLog}
	ctl := &http.Server{Handler: p.ControlHandler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errorLog}
	tlsLn := tls.NewListener(pubLn, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})

	logger.Info("agenttls proxy serving", "mode", cfg.Mode, "tamper", cfg.Tamper, "listen", pubLn.Addr(),
		"control", ctlLn.Addr(), "upstream", cfg.Upstream, "upstreamVerified", len(cfg.UpstreamCA) > 0,
		"cacertsBytes", len(p.CACertsBody()))
	if ready != nil {
		ready(pubLn.Addr(), ctlLn.Addr())
	}

	errc := make(chan error, 2)
	var wg sync.WaitGroup
	serve := func(name string, s *http.Server, ln net.Listener) {
		defer wg.Done()
		if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("%s listener: %w", name, err)
		}
	}
	wg.Add(2)
	go serve("https", pub, tlsLn)
	go serve("control", ctl, ctlLn)
	code := 0
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-errc:
		fmt.Fprintf(stderr, "agenttls-proxy: %v\n", err)
		code = 1
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = pub.Shutdown(shutdownCtx)
	_ = ctl.Shutdown(shutdownCtx)
	wg.Wait()
	return code
}
