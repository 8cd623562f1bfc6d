package accesslog

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Client reads the request log of a harness server through its control API.
type Client struct {
	// BaseURL is the control listener, e.g. "http://127.0.0.1:9090".
	BaseURL string
	// HTTP is the client to use; http.DefaultClient when nil.
	HTTP *http.Client
}

// Requests returns the entries with Seq > since from client ("" for every client).
func (c *Client) Requests(ctx context.Context, client string, since uint64) (RequestList, error) {
	q := url.Values{}
	if client != "" {
		q.Set("client", client)
	}
	q.Set("since", strconv.FormatUint(since, 10))
	var out RequestList
	err := c.Do(ctx, http.MethodGet, PathRequests+"?"+q.Encode(), nil, &out)
	return out, err
}

// Seq returns the server's current sequence number.
func (c *Client) Seq(ctx context.Context) (uint64, error) {
	var out SeqResponse
	err := c.Do(ctx, http.MethodGet, PathSeq, nil, &out)
	return out.Seq, err
}

// Do sends a control request with an optional JSON body and decodes a JSON answer into out
// (when out is not nil). Any status other than 200 is an error carrying the body.
func (c *Client) Do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("control %s %s: encode body: %w", method, path, err)
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("control %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("control %s %s: is the control listener up at %s? %w", method, path, c.BaseURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("control %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("control %s %s: status %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("control %s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}
