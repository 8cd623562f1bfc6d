package script

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// AssetsPath is where a running Rancher serves the raw install script.
const AssetsPath = "/assets/system-agent-install.sh"

// ServedPath is the route where Rancher serves its preamble followed by the script.
const ServedPath = "/system-agent-install.sh"

// FromURL downloads a script from rawURL with client (a fresh default client if nil), bounded
// by ctx. A body served with Rancher's preamble is accepted: the preamble is cut off and kept.
func FromURL(ctx context.Context, rawURL string, client *http.Client) (*Script, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("script URL %q: want an absolute http or https URL", RedactURL(rawURL))
	}
	b, err := get(ctx, client, u.String())
	if err != nil {
		return nil, err
	}
	return newScript("", "url "+RedactURL(u.String()), b)
}

// redacted stands in for a URL's credentials and query values wherever the URL is shown.
const redacted = "REDACTED"

// RedactURL returns rawURL with its user information and query values replaced by REDACTED, so
// that a token in a script URL never reaches a report, a log or a terminal. A value that does not
// parse as a URL is returned as REDACTED.
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return redacted
	}
	if u.User != nil {
		u.User = url.User(redacted)
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{redacted}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// IsRedacted reports whether s is a URL RedactURL changed: it cannot be fetched as it is.
func IsRedacted(s string) bool { return strings.Contains(s, redacted) }

// FromRancher downloads the raw script a running Rancher serves at baseURL+AssetsPath. If
// baseURL already points at the served route (ending in ServedPath), that is fetched instead
// and Rancher's preamble is cut off.
func FromRancher(ctx context.Context, baseURL string, client *http.Client) (*Script, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("rancher URL %q: want an absolute http or https URL such as https://rancher.example.test", baseURL)
	}
	target := *u
	served := strings.HasSuffix(u.Path, ServedPath) && !strings.HasSuffix(u.Path, AssetsPath)
	if !strings.HasSuffix(u.Path, ServedPath) {
		target.Path = u.Path + AssetsPath
	}
	b, err := get(ctx, client, target.String())
	if err != nil {
		return nil, err
	}
	s, err := newScript("", "rancher "+target.String(), b)
	if err != nil {
		if !served {
			return nil, fmt.Errorf("%w; or try the served route %s%s, whose preamble is cut off", err, u.String(), ServedPath)
		}
		return nil, err
	}
	return s, nil
}

// urlTimeout bounds the download of a script from a URL with the default client.
const urlTimeout = time.Minute

func get(ctx context.Context, client *http.Client, rawURL string) ([]byte, error) {
	u := RedactURL(rawURL) // for messages
	if client == nil {
		// A server that accepts the connection and never answers must not hang the run.
		client = &http.Client{Timeout: urlTimeout}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("get install script %s: %w", u, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the URL, query included
		}
		return nil, fmt.Errorf("get install script %s: %w; check the URL, and for a private CA give a client that trusts it", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return nil, fmt.Errorf("get install script %s: HTTP %s (%q); check the URL", u, resp.Status, strings.TrimSpace(string(snippet)))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("get install script %s: reading body: %w", u, err)
	}
	if len(b) > maxBody {
		return nil, fmt.Errorf("get install script %s: body larger than %d bytes, far larger than any install script; check the URL", u, maxBody)
	}
	return b, nil
}
