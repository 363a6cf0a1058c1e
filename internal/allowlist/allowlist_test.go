package allowlist

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
)

func TestBuiltin(t *testing.T) {
	// B4: spoofed sources no engine may ban, whatever the configuration.
	l := New(nil)
	for addr, why := range map[string]string{
		"127.0.0.1":          "loopback",
		"127.8.9.10":         "loopback",
		"::1":                "loopback",
		"::ffff:127.0.0.1":   "loopback",
		"0.0.0.0":            "unspecified",
		"::":                 "unspecified",
		"255.255.255.255":    "broadcast",
		"224.0.0.1":          "multicast",
		"239.255.255.250":    "multicast",
		"ff02::1":            "multicast",
		"169.254.169.254":    "link-local",
		"fe80::1":            "link-local",
		"fe80::1%eth0":       "link-local",
		"::ffff:224.0.0.251": "multicast",
	} {
		a := netip.MustParseAddr(addr)
		if !l.Contains(a) {
			t.Errorf("Contains(%s) = false, want true (%s)", addr, why)
			continue
		}
		if e, _ := l.Match(netip.PrefixFrom(a.Unmap().WithZone(""), a.Unmap().BitLen())); e.Why != why {
			t.Errorf("Match(%s) = %v, want why %q", addr, e, why)
		}
	}
	for _, addr := range []string{"198.51.100.1", "0.0.0.1", "126.255.255.255", "128.0.0.0", "2001:db8::1", "::2", "fec0::1", "223.255.255.255", "240.0.0.1"} {
		if l.Contains(netip.MustParseAddr(addr)) {
			t.Errorf("Contains(%s) = true, want false", addr)
		}
	}
	if l.Contains(netip.Addr{}) || l.Overlaps(netip.Prefix{}) {
		t.Error("the zero address is allowlisted")
	}
}

func TestContainsOverlaps(t *testing.T) {
	l := New([]netip.Prefix{
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("2001:db8:a::10/128"),
		netip.MustParsePrefix("::ffff:10.0.0.0/104"), // read as 10.0.0.0/8
		netip.MustParsePrefix("198.51.100.77/24"),    // masked to 198.51.100.0/24
	})
	for _, c := range []struct {
		p    string
		want bool
	}{
		{"203.0.113.9/32", true},
		{"203.0.112.0/23", true}, // holds the /24
		{"203.0.0.0/16", true},
		{"203.0.114.0/24", false},
		{"2001:db8:a::10/128", true},
		{"2001:db8:a::/64", true}, // an IPv6 /64 ban would cover the admin
		{"2001:db8:a::11/128", false},
		{"2001:db8:b::/64", false},
		{"10.200.0.1/32", true},
		{"::ffff:10.1.2.3/128", true},
		{"11.0.0.0/8", false},
		{"198.51.100.200/32", true},
		{"0.0.0.0/0", true},
		{"::/0", true},
		{"192.0.2.0/24", false},
	} {
		p := netip.MustParsePrefix(c.p)
		if got := l.Overlaps(p); got != c.want {
			t.Errorf("Overlaps(%s) = %v, want %v", p, got, c.want)
		}
		if p.IsSingleIP() {
			if got := l.Contains(p.Addr()); got != c.want {
				t.Errorf("Contains(%s) = %v, want %v", p.Addr(), got, c.want)
			}
		}
	}
}

func TestMatchMostSpecific(t *testing.T) {
	l := New([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		staticSource{{netip.MustParsePrefix("10.1.2.3/32"), "own address eth0"}})
	for p, why := range map[string]string{
		"10.1.2.3/32":  "own address eth0",
		"10.9.9.9/32":  "config",
		"10.1.2.0/24":  "own address eth0",
		"127.0.0.1/32": "loopback",
	} {
		if e, ok := l.Match(netip.MustParsePrefix(p)); !ok || e.Why != why {
			t.Errorf("Match(%s) = %v %v, want %q", p, e, ok, why)
		}
	}
	if e, ok := l.Match(netip.MustParsePrefix("11.0.0.0/8")); ok {
		t.Errorf("Match(11.0.0.0/8) = %v", e)
	}
}

// TestSpansAgainstLinear checks the merged, binary-searched spans against a
// plain scan of the entries.
func TestSpansAgainstLinear(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	randPrefix := func(v6 bool, minBits int) netip.Prefix {
		var a netip.Addr
		bits := 0
		if v6 {
			var b [16]byte
			b[0], b[1] = 0x20, 0x01 // keep clear of the built-in entries
			for i := 2; i < 16; i++ {
				b[i] = byte(r.IntN(4)) // few distinct values: many overlaps
			}
			a, bits = netip.AddrFrom16(b), minBits+r.IntN(129-minBits)
		} else {
			a = netip.AddrFrom4([4]byte{byte(1 + r.IntN(3)), byte(r.IntN(4)), byte(r.IntN(4)), byte(r.IntN(256))})
			bits = minBits/4 + r.IntN(33-minBits/4)
		}
		return netip.PrefixFrom(a, bits).Masked()
	}
	for round := range 50 {
		var static []netip.Prefix
		for range 1 + r.IntN(40) {
			static = append(static, randPrefix(r.IntN(2) == 0, 16))
		}
		l := New(static)
		for range 500 {
			p := randPrefix(r.IntN(2) == 0, 8)
			want := false
			for _, e := range l.Entries() {
				want = want || e.Prefix.Overlaps(p)
			}
			if got := l.Overlaps(p); got != want {
				t.Fatalf("round %d: Overlaps(%s) = %v, want %v; entries %v", round, p, got, want, static)
			}
			if e, ok := l.Match(p); ok != want || (ok && !e.Prefix.Overlaps(p)) {
				t.Fatalf("round %d: Match(%s) = %v %v", round, p, e, ok)
			}
		}
	}
}

type staticSource []Entry

func (s staticSource) Prefixes() ([]netip.Prefix, error) { return prefixesOf(s.Entries()) }
func (s staticSource) Entries() ([]Entry, error)         { return s, nil }

// flaky returns the next answer on every call.
type flaky struct {
	mu      sync.Mutex
	answers []any // []netip.Prefix or error
}

func (f *flaky) Prefixes() ([]netip.Prefix, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.answers[0]
	if len(f.answers) > 1 {
		f.answers = f.answers[1:]
	}
	if err, ok := a.(error); ok {
		return nil, err
	}
	return a.([]netip.Prefix), nil
}

var errGone = errors.New("source gone")

func TestRefresh(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.10")
	b := netip.MustParseAddr("192.0.2.20")
	f := &flaky{answers: []any{
		[]netip.Prefix{netip.PrefixFrom(a, 32)},
		errGone,
		[]netip.Prefix{netip.PrefixFrom(b, 32)},
	}}
	l := New(nil, f) // reads answer 1
	if !l.Contains(a) {
		t.Fatal("first answer not used")
	}
	if e, _ := l.Match(netip.PrefixFrom(a, 32)); e.Why != "runtime" {
		t.Errorf("plain source entry: why %q, want runtime", e.Why)
	}
	err := l.Refresh() // answer 2: an error, keep the last good set
	if !errors.Is(err, errGone) {
		t.Fatalf("Refresh() = %v, want errGone", err)
	}
	if !l.Contains(a) {
		t.Error("a failed refresh dropped the last good set")
	}
	if err := l.Refresh(); err != nil {
		t.Fatal(err)
	}
	if l.Contains(a) || !l.Contains(b) {
		t.Errorf("after refresh: contains a %v b %v, want false true", l.Contains(a), l.Contains(b))
	}
}

func TestRefreshTooMany(t *testing.T) {
	many := make([]netip.Prefix, maxSourceEntries+1)
	for i := range many {
		many[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
	}
	l := New(nil, &flaky{answers: []any{many}})
	if err := l.Refresh(); err == nil {
		t.Error("a source listing too much was accepted")
	}
	if l.Contains(netip.MustParseAddr("10.0.0.1")) {
		t.Error("the oversized set was used")
	}
}

func TestEntries(t *testing.T) {
	l := New([]netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("203.0.113.0/24")},
		staticSource{{netip.MustParsePrefix("192.0.2.1/32"), "own address eth0"}})
	ents := l.Entries()
	if len(ents) != len(Builtin)+2 {
		t.Fatalf("Entries() = %v: want builtins, one config entry, one own address", ents)
	}
	if got := fmt.Sprint(ents[len(Builtin):]); got != "[203.0.113.0/24 (config) 192.0.2.1/32 (own address eth0)]" {
		t.Errorf("Entries() tail = %s", got)
	}
	ents[0].Why = "mutated"
	if l.Entries()[0].Why == "mutated" {
		t.Error("Entries returned the list's own slice")
	}
}

func TestConcurrent(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.10")
	f := &flaky{answers: []any{[]netip.Prefix{netip.PrefixFrom(a, 32)}}}
	l := New(nil, f)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 1000 {
				if !l.Contains(a) || !l.Contains(netip.MustParseAddr("127.0.0.1")) {
					t.Error("entry missing during refresh")
					return
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range 100 {
				l.Refresh()
			}
		})
	}
	wg.Wait()
}

func BenchmarkContains(b *testing.B) {
	var static []netip.Prefix
	for i := range 10000 {
		static = append(static, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24))
	}
	l := New(static)
	a := netip.MustParseAddr("198.51.100.7")
	b.ReportAllocs()
	for b.Loop() {
		l.Contains(a)
	}
}

func TestSetStatic(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.10")
	f := &flaky{answers: []any{[]netip.Prefix{netip.PrefixFrom(a, 32)}, errGone}}
	l := New([]netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, f)
	l.SetStatic([]netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")})
	for addr, want := range map[string]bool{"203.0.113.1": false, "198.51.100.1": true, "192.0.2.10": true, "127.0.0.1": true} {
		if got := l.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("after SetStatic: Contains(%s) = %v, want %v", addr, got, want)
		}
	}
}
