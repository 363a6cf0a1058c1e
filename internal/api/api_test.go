package api

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type fakeBackend struct {
	bans map[netip.Prefix]Ban
}

func (f *fakeBackend) Status() Status         { return Status{Healthy: true, Config: "x"} }
func (f *fakeBackend) Scans() ([]Scan, error) { return nil, nil }
func (f *fakeBackend) Bans(limit int) ([]Ban, int, error) {
	var out []Ban
	for _, b := range f.bans {
		out = append(out, b)
	}
	return out, len(out), nil
}
func (f *fakeBackend) Ban(r BanRequest) (Ban, error) {
	if r.Prefix == netip.MustParsePrefix("203.0.113.10/32") && !r.Force {
		return Ban{}, RefusedError{errors.New("203.0.113.10 is allowlisted (config)")}
	}
	b := Ban{Prefix: r.Prefix, Reason: r.Reason}
	f.bans[r.Prefix] = b
	return b, nil
}
func (f *fakeBackend) Unban(p netip.Prefix) (bool, error) {
	_, ok := f.bans[p]
	delete(f.bans, p)
	return ok, nil
}
func (f *fakeBackend) UnbanAll() (int, error) {
	n := len(f.bans)
	f.bans = map[netip.Prefix]Ban{}
	return n, nil
}
func (f *fakeBackend) Allowlist() ([]AllowEntry, error)           { return nil, nil }
func (f *fakeBackend) AllowlistAdd(AllowRequest) (int, error)     { return 2, nil }
func (f *fakeBackend) AllowlistRemove(netip.Prefix) (bool, error) { return false, nil }
func (f *fakeBackend) Reload() error                              { return RefusedError{errors.New("x.toml:3:1: bad")} }

func TestRoundTrip(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "run", "moat.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fb := &fakeBackend{bans: map[netip.Prefix]Ban{}}
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, sock, Handler(fb)) }()
	c := NewClient(sock)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := c.Status(); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	p := netip.MustParsePrefix("198.51.100.0/24")
	if _, err := c.Ban(BanRequest{Prefix: p, Reason: "<script>"}); err != nil {
		t.Fatal(err)
	}
	bans, err := c.Bans(0)
	if err != nil || len(bans) != 1 || bans[0].Reason != "<script>" {
		t.Fatalf("bans = %+v, %v", bans, err)
	}
	_, err = c.Ban(BanRequest{Prefix: netip.MustParsePrefix("203.0.113.10/32")})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 409 || !strings.Contains(se.Msg, "allowlisted") {
		t.Errorf("ban of an allowlisted address: %v", err)
	}
	if err := c.Unban(p); err != nil {
		t.Fatal(err)
	}
	if err := c.Unban(p); !errors.As(err, &se) || se.Code != 404 {
		t.Errorf("second unban: %v", err)
	}
	if n, err := c.AllowlistAdd(AllowRequest{Prefix: p}); n != 2 || err != nil {
		t.Errorf("allowlist add = %d, %v", n, err)
	}
	if err := c.Reload(); err == nil || !strings.Contains(err.Error(), "x.toml:3:1") {
		t.Errorf("reload = %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := NewClient(sock).Status(); !errors.Is(err, ErrNotRunning) {
		t.Errorf("after stop: %v, want ErrNotRunning", err)
	}
}

func TestParsePrefix(t *testing.T) {
	for in, want := range map[string]string{"192.0.2.1": "192.0.2.1/32", "::ffff:192.0.2.1": "192.0.2.1/32", "2001:db8::/64": "2001:db8::/64"} {
		if p, err := ParsePrefix(in); err != nil || p.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v", in, p, err)
		}
	}
	for _, bad := range []string{"192.0.2.1/24", "fe80::1%eth0", "example.com", "192.030.0.1", ""} {
		if _, err := ParsePrefix(bad); err == nil {
			t.Errorf("ParsePrefix(%q) accepted", bad)
		}
	}
}
