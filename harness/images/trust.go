package images

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/agenttls/agenttls/harness/dockerx"
	"github.com/agenttls/agenttls/harness/sweep"
)

// caDir is where Debian's update-ca-certificates picks up local roots (*.crt only).
const caDir = "/usr/local/share/ca-certificates"

// TrustVariant returns an image derived from base whose system trust store also trusts roots
// (name -> PEM), made the way an administrator does it: the PEMs are copied to
// /usr/local/share/ca-certificates/agenttls-<name>.crt and update-ca-certificates runs in a
// container of base, which is then committed. Base's CMD must keep a container running (the node
// image runs sleep infinity); its config is kept.
//
// labels must carry the run's sweep labels (sweep.Labels(runID)): the image is tagged
// agenttls/node-trust:<hash of base and roots>-<run id> and swept with the run. A second call
// with the same inputs in the same run, from any goroutine or process, reuses the image, so the
// ~2 s cost is paid once per run and variant, not per cell.
func TrustVariant(ctx context.Context, base string, roots map[string][]byte, labels map[string]string, opts ...Option) (string, error) {
	o, err := apply(opts)
	if err != nil {
		return "", fmt.Errorf("trust variant: %w", err)
	}
	runID := labels[sweep.LabelRunID]
	if runID == "" {
		return "", fmt.Errorf("trust variant of %s: labels carry no %s; pass sweep.Labels(runID) so the run's sweep removes the image", base, sweep.LabelRunID)
	}
	if len(roots) == 0 {
		return "", fmt.Errorf("trust variant of %s: no roots given", base)
	}
	names := slices.Sorted(maps.Keys(roots))
	files := make([]dockerx.File, 0, len(names))
	for _, name := range names {
		if err := checkName(name); err != nil {
			return "", fmt.Errorf("trust variant of %s: %w", base, err)
		}
		if err := checkRoots(roots[name]); err != nil {
			return "", fmt.Errorf("trust variant of %s: root %q: %w", base, name, err)
		}
		files = append(files, dockerx.File{Name: strings.TrimPrefix(caDir, "/") + "/agenttls-" + name + ".crt", Mode: 0o644, Body: roots[name]})
	}

	cli, err := dockerx.Client(ctx)
	if err != nil {
		return "", fmt.Errorf("trust variant of %s: %w", base, err)
	}
	defer cli.Close()
	bi, err := cli.ImageInspect(ctx, base)
	if err != nil {
		return "", fmt.Errorf("trust variant: inspect base image %s (build it first with images.Node): %w", base, err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "base\x00%s\x00", bi.ID)
	for _, name := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(roots[name]))
		h.Write(roots[name])
	}
	tag := TrustRepo + ":" + tagSafe(hex.EncodeToString(h.Sum(nil))[:12]+"-"+runID)

	if ok, err := dockerx.ImageExists(ctx, cli, tag); err != nil || ok {
		return tag, err
	}
	unlock, err := dockerx.Lock(ctx, "image-"+tag)
	if err != nil {
		return "", fmt.Errorf("trust variant: %w", err)
	}
	defer unlock()
	if ok, err := dockerx.ImageExists(ctx, cli, tag); err != nil || ok {
		return tag, err
	}

	start := time.Now()
	ctrLabels := map[string]string{LabelImage: "node-trust", LabelRoots: strings.Join(names, ",")}
	maps.Copy(ctrLabels, labels)
	created, err := cli.ContainerCreate(ctx, &container.Config{Image: bi.ID, Labels: ctrLabels},
		&container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		return "", fmt.Errorf("trust variant: create container of %s: %w", base, err)
	}
	defer func() {
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = cli.ContainerRemove(rmCtx, created.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	}()
	archive, err := dockerx.Tar(files...)
	if err != nil {
		return "", fmt.Errorf("trust variant: %w", err)
	}
	if err := cli.CopyToContainer(ctx, created.ID, "/", archive, container.CopyToContainerOptions{}); err != nil {
		return "", fmt.Errorf("trust variant: copy roots into %s: %w", base, err)
	}
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return "", fmt.Errorf("trust variant: start container of %s: %w", base, err)
	}
	prepared := time.Since(start)
	code, out, err := dockerx.ExecOutput(ctx, cli, created.ID, []string{"update-ca-certificates"})
	updated := time.Since(start)
	if err != nil {
		return "", fmt.Errorf("trust variant: run update-ca-certificates in %s (its CMD must keep the container running): %w", base, err)
	}
	if code != 0 {
		return "", fmt.Errorf("trust variant: update-ca-certificates in %s exited %d:\n%s", base, code, strings.TrimSpace(string(out)))
	}
	if !strings.Contains(string(out), fmt.Sprintf("%d added", len(names))) {
		return "", fmt.Errorf("trust variant: update-ca-certificates in %s did not add the %d roots:\n%s", base, len(names), strings.TrimSpace(string(out)))
	}
	if _, err := cli.ContainerCommit(ctx, created.ID, container.CommitOptions{
		Reference: tag,
		Comment:   "agenttls: " + base + " trusting " + strings.Join(names, ", "),
	}); err != nil {
		return "", fmt.Errorf("trust variant: commit %s: %w", tag, err)
	}
	o.stepf("trust variant: built %s (%s + %s) in %s (container %s, update-ca-certificates %s, commit %s)",
		tag, base, strings.Join(names, ", "), time.Since(start).Round(time.Millisecond), prepared.Round(time.Millisecond),
		(updated - prepared).Round(time.Millisecond), (time.Since(start) - updated).Round(time.Millisecond))
	return tag, nil
}

// checkName accepts names usable in a file name and a label.
func checkName(name string) error {
	if name == "" {
		return errors.New("empty root name")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("root name %q: use letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}

// checkRoots accepts PEM holding exactly one CA certificate, as update-ca-certificates expects
// one certificate per .crt file.
func checkRoots(data []byte) error {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return errors.New("not a PEM CERTIFICATE")
	}
	if b, _ := pem.Decode(rest); b != nil {
		return errors.New("more than one PEM block; give one root per name")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("parse certificate: %w", err)
	}
	if !c.IsCA {
		return fmt.Errorf("%s is not a CA certificate", c.Subject)
	}
	return nil
}

// tagSafe maps s to the characters a Docker tag allows and bounds its length.
func tagSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
	if len(s) > 128 {
		s = s[:128]
	}
	return s
}
