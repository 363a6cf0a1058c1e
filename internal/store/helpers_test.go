package store

import (
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/moat-sec/moat/internal/event"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// clock is a settable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openTest opens a store in a fresh temporary directory.
func openTest(t testing.TB, c *clock) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "moat.db"), c)
}

func openAt(t testing.TB, path string, c *clock) *Store {
	t.Helper()
	s, err := Open(Options{Path: path, Now: c.Now, Logf: t.Logf})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func pfx(s string) netip.Prefix {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p
	}
	a := netip.MustParseAddr(s)
	return netip.PrefixFrom(a, a.BitLen())
}

// ban is a Ban decision at time at for d (0: permanent).
func ban(prefix string, at time.Time, d time.Duration, jail string) event.Decision {
	dec := event.Decision{
		Op: event.Ban, Prefix: pfx(prefix), Duration: d, Time: at,
		Jail: jail, Detector: "jail", Reason: jail + " failures", Evidence: []string{"line from " + jail}, Offence: 1,
	}
	if d > 0 {
		dec.Expires = at.Add(d)
	}
	return dec
}
