package enforce

import (
	"net/netip"
	"testing"
	"time"

	"github.com/moat-sec/moat/internal/event"
	"github.com/moat-sec/moat/internal/nft"
)

// fakeKernel models the ban sets: element -> timeout at last write.
type fakeKernel struct {
	sets map[string]map[netip.Prefix]time.Duration
	adds int
}

func newFake() *fakeKernel { return &fakeKernel{sets: map[string]map[netip.Prefix]time.Duration{}} }

func (f *fakeKernel) AddElements(s nft.SetRef, els []nft.Element) error {
	f.adds++
	m := f.sets[s.Name]
	if m == nil {
		m = map[netip.Prefix]time.Duration{}
		f.sets[s.Name] = m
	}
	for _, e := range els {
		m[e.Prefix] = e.Timeout
	}
	return nil
}

func (f *fakeKernel) DeleteElements(s nft.SetRef, els []nft.Element) error {
	for _, e := range els {
		delete(f.sets[s.Name], e.Prefix)
	}
	return nil
}

func (f *fakeKernel) HasSet(nft.SetRef) (bool, error) { return true, nil }

func ban(p string, exp time.Time) event.Decision {
	return event.Decision{Op: event.Ban, Prefix: netip.MustParsePrefix(p), Expires: exp, Duration: time.Hour}
}

func TestNeverShorten(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	k := newFake()
	e := New(k, "moat", func() time.Time { return now })
	if err := e.Apply([]event.Decision{ban("198.51.100.7/32", now.Add(2*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	e.Apply([]event.Decision{ban("198.51.100.7/32", now.Add(10*time.Minute))})
	if got := k.sets["ban_v4"][netip.MustParsePrefix("198.51.100.7/32")]; got != 2*time.Hour {
		t.Errorf("timeout %v after a shorter re-ban, want 2h kept", got)
	}
	e.Apply([]event.Decision{ban("198.51.100.7/32", now.Add(3*time.Hour))})
	if got := k.sets["ban_v4"][netip.MustParsePrefix("198.51.100.7/32")]; got != 3*time.Hour {
		t.Errorf("timeout %v after a longer re-ban, want 3h", got)
	}
	perm := event.Decision{Op: event.Ban, Prefix: netip.MustParsePrefix("198.51.100.7/32")}
	e.Apply([]event.Decision{perm})
	if got := k.sets["ban_v4"][netip.MustParsePrefix("198.51.100.7/32")]; got != 0 {
		t.Errorf("permanent ban has timeout %v", got)
	}
	e.Apply([]event.Decision{ban("198.51.100.7/32", now.Add(5*time.Hour))})
	if got := k.sets["ban_v4"][netip.MustParsePrefix("198.51.100.7/32")]; got != 0 {
		t.Errorf("a timed ban shortened a permanent one to %v", got)
	}
}

func TestSetsByShape(t *testing.T) {
	now := time.Now()
	k := newFake()
	e := New(k, "moat", func() time.Time { return now })
	e.Apply([]event.Decision{
		ban("192.0.2.1/32", now.Add(time.Hour)),
		ban("2001:db8::1/128", now.Add(time.Hour)),
		ban("192.0.2.0/24", now.Add(time.Hour)),
		ban("2001:db8:1::/64", now.Add(time.Hour)),
	})
	for set, n := range map[string]int{"ban_v4": 1, "ban_v6": 1, "banpfx_v4": 1, "banpfx_v6": 1} {
		if len(k.sets[set]) != n {
			t.Errorf("%s has %d elements, want %d: %v", set, len(k.sets[set]), n, k.sets)
		}
	}
}

// TestPrefixesNeverOverlap: a wider prefix absorbs narrower ones; a
// narrower one inside a live wider one only extends it.
func TestPrefixesNeverOverlap(t *testing.T) {
	now := time.Now()
	k := newFake()
	e := New(k, "moat", func() time.Time { return now })
	e.Apply([]event.Decision{ban("2001:db8:1:1::/64", now.Add(time.Hour)), ban("2001:db8:1:2::/64", now.Add(3*time.Hour))})
	e.Apply([]event.Decision{ban("2001:db8:1::/48", now.Add(2*time.Hour))})
	got := k.sets["banpfx_v6"]
	if len(got) != 1 || got[netip.MustParsePrefix("2001:db8:1::/48")] != 3*time.Hour {
		t.Fatalf("after the /48: %v, want only the /48 with the longest expiry", got)
	}
	e.Apply([]event.Decision{ban("2001:db8:1:3::/64", now.Add(5*time.Hour))})
	got = k.sets["banpfx_v6"]
	if len(got) != 1 || got[netip.MustParsePrefix("2001:db8:1::/48")] != 5*time.Hour {
		t.Errorf("a /64 inside the /48: %v, want the /48 extended", got)
	}
}

func TestUnbanReassertForget(t *testing.T) {
	now := time.Now()
	k := newFake()
	e := New(k, "moat", func() time.Time { return now })
	e.Apply([]event.Decision{ban("192.0.2.1/32", now.Add(time.Hour)), ban("192.0.2.2/32", now.Add(time.Minute))})
	e.Apply([]event.Decision{{Op: event.Unban, Prefix: netip.MustParsePrefix("192.0.2.1/32")}})
	if _, ok := k.sets["ban_v4"][netip.MustParsePrefix("192.0.2.1/32")]; ok {
		t.Error("unban left the element")
	}
	k.sets = map[string]map[netip.Prefix]time.Duration{} // another tool flushed everything
	now = now.Add(30 * time.Second)
	if err := e.Reassert(); err != nil {
		t.Fatal(err)
	}
	if got := k.sets["ban_v4"][netip.MustParsePrefix("192.0.2.2/32")]; got != 30*time.Second {
		t.Errorf("reasserted with %v, want the 30s left", got)
	}
	now = now.Add(time.Minute)
	if n := e.Forget(); n != 0 {
		t.Errorf("%d live after expiry", n)
	}
}

// TestBanThenUnbanInOneBatch: the last change to a prefix in a batch wins.
func TestBanThenUnbanInOneBatch(t *testing.T) {
	now := time.Now()
	k := newFake()
	e := New(k, "moat", func() time.Time { return now })
	p := netip.MustParsePrefix("192.0.2.1/32")
	e.Apply([]event.Decision{ban("192.0.2.1/32", now.Add(time.Hour)), {Op: event.Unban, Prefix: p}})
	if _, ok := k.sets["ban_v4"][p]; ok || len(e.Live()) != 0 {
		t.Errorf("ban then unban left the ban: kernel %v live %v", k.sets, e.Live())
	}
	e.Apply([]event.Decision{ban("192.0.2.1/32", now.Add(time.Hour))})
	e.Apply([]event.Decision{{Op: event.Unban, Prefix: p}, ban("192.0.2.1/32", now.Add(2*time.Hour))})
	if got, ok := k.sets["ban_v4"][p]; !ok || got != 2*time.Hour {
		t.Errorf("unban then ban: kernel %v", k.sets)
	}
}
