package dockerx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
)

// ImportImage makes image ref from files alone (what a FROM scratch image with one COPY holds),
// with labels and further Dockerfile-style changes ("CMD [...]"). It is one engine call, without
// a builder or intermediate containers: about ten times faster than a classic build here.
func ImportImage(ctx context.Context, cli client.APIClient, ref string, files []File, labels map[string]string, changes ...string) error {
	archive, err := Tar(files...)
	if err != nil {
		return err
	}
	if len(labels) > 0 {
		var b strings.Builder
		b.WriteString("LABEL")
		for _, k := range slices.Sorted(maps.Keys(labels)) {
			fmt.Fprintf(&b, " %s=%s", strconv.Quote(k), strconv.Quote(labels[k]))
		}
		changes = append(changes, b.String())
	}
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: archive, SourceName: "-"}, ref, image.ImportOptions{Changes: changes})
	if err != nil {
		return fmt.Errorf("import image %s: %w", ref, err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var m jsonmessage.JSONMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("import image %s: read answer: %w", ref, err)
		}
		if m.Error != nil {
			return fmt.Errorf("import image %s: %w", ref, m.Error)
		}
	}
}
