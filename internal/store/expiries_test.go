package store

import (
	"net/netip"
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
