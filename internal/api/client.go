package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// Client talks to the daemon over its unix socket.
type Client struct {
	hc   *http.Client
	path string
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}, path: path}
}

// ErrNotRunning means nothing listens on the socket.
var ErrNotRunning = errors.New("the moat daemon is not running")

// StatusError is an error answer from the daemon.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return e.Msg }

func (c *Client) do(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://moat"+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w (no socket at %s; start it with `moat run`)", ErrNotRunning, c.path)
		}
		return fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("api: read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
			eb.Error = resp.Status
		}
		return &StatusError{Code: resp.StatusCode, Msg: eb.Error}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("api: decode answer: %w", err)
		}
	}
	return nil
}

// Status returns the daemon's health.
func (c *Client) Status() (Status, error) {
	var s Status
	return s, c.do("GET", "/v1/status", nil, &s)
}

// Bans lists active bans, the most recent first: at most limit of them
// (0: all).
func (c *Client) Bans(limit int) ([]Ban, error) {
	var bs []Ban
	return bs, c.do("GET", "/v1/bans?limit="+strconv.Itoa(limit), nil, &bs)
}

// Ban bans by hand.
func (c *Client) Ban(req BanRequest) (Ban, error) {
	var b Ban
	return b, c.do("POST", "/v1/bans", req, &b)
}

// Unban lifts one ban.
func (c *Client) Unban(p netip.Prefix) error { return c.do("DELETE", "/v1/bans/"+p.String(), nil, nil) }

// UnbanAll lifts every ban.
func (c *Client) UnbanAll() (int, error) {
	var n Count
	return n.N, c.do("DELETE", "/v1/bans", nil, &n)
}

// Allowlist lists the allowlist, every source included.
func (c *Client) Allowlist() ([]AllowEntry, error) {
	var es []AllowEntry
	return es, c.do("GET", "/v1/allowlist", nil, &es)
}

// AllowlistAdd adds to the runtime allowlist and returns how many bans it lifted.
func (c *Client) AllowlistAdd(req AllowRequest) (int, error) {
	var n Count
	return n.N, c.do("POST", "/v1/allowlist", req, &n)
}

// AllowlistRemove removes a runtime allowlist entry.
func (c *Client) AllowlistRemove(p netip.Prefix) error {
	return c.do("DELETE", "/v1/allowlist/"+p.String(), nil, nil)
}

// Reload asks the daemon to reload its configuration.
func (c *Client) Reload() error { return c.do("POST", "/v1/reload", nil, nil) }

// Scans lists current and recent scanners.
func (c *Client) Scans() ([]Scan, error) {
	var ss []Scan
	return ss, c.do("GET", "/v1/scans", nil, &ss)
}
