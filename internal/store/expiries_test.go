package store

import (
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/moat-sec/moat/internal/event"
)

// TestActiveBanExpiries: the lean listing has exactly the bans ActiveBans
// has, with the same expiries: permanent ones, timed ones, not expired
// ones nor lifted ones.
func TestActiveBanExpiries(t *testing.T) {
	c := newClock(t0)
	s := openTest(t, c)
	must(t, s.AddBans([]event.Decision{
		ban("192.0.2.1", t0, time.Hour, "sshd"),
		ban("192.0.2.2", t0, 0, "sshd"), // permanent
		ban("192.0.2.3", t0, time.Minute, "sshd"),
		ban("2001:db8::/64", t0, 2*time.Hour, "sshd"),
		ban("198.51.100.0/24", t0, time.Hour, "sshd"),
	}))
	if _, err := s.RemoveBan(pfx("198.51.100.0/24")); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(2 * time.Minute) // 192.0.2.3 is over
	got, err := s.ActiveBanExpiries(now)
	if err != nil {
		t.Fatal(err)
	}
	full, err := s.ActiveBans(now)
	if err != nil {
		t.Fatal(err)
	}
	var want []BanExpiry
	for _, b := range full {
		want = append(want, BanExpiry{Prefix: b.Prefix, Expires: b.Expires})
	}
	byPrefix := func(a, b BanExpiry) int { return a.Prefix.Compare(b.Prefix) }
	slices.SortFunc(got, byPrefix)
	slices.SortFunc(want, byPrefix)
	if len(got) != 3 || !slices.EqualFunc(got, want, func(a, b BanExpiry) bool { return a.Prefix == b.Prefix && a.Expires.Equal(b.Expires) }) {
		t.Fatalf("ActiveBanExpiries = %v\nActiveBans gives %v", got, want)
	}
	for _, b := range got {
		if b.Prefix == netip.MustParsePrefix("192.0.2.2/32") && !b.Expires.IsZero() {
			t.Errorf("permanent ban has expiry %v", b.Expires)
		}
	}
}

func TestActiveBansPerJail(t *testing.T) {
	s, err := Open(Options{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	ds := []event.Decision{
		{Op: event.Ban, Prefix: netip.MustParsePrefix("192.0.2.1/32"), Jail: "sshd", Time: now, Duration: time.Hour},
		{Op: event.Ban, Prefix: netip.MustParsePrefix("192.0.2.2/32"), Jail: "sshd", Time: now},
		{Op: event.Ban, Prefix: netip.MustParsePrefix("192.0.2.3/32"), Jail: "honeypot", Time: now, Duration: time.Hour},
		{Op: event.Ban, Prefix: netip.MustParsePrefix("192.0.2.4/32"), Jail: "sshd", Time: now.Add(-2 * time.Hour), Duration: time.Hour},
	}
	if err := s.AddBans(ds); err != nil {
		t.Fatal(err)
	}
	got, err := s.ActiveBansPerJail(now)
	if err != nil || got["sshd"] != 2 || got["honeypot"] != 1 || len(got) != 2 {
		t.Errorf("per jail = %v, %v", got, err)
	}
}
