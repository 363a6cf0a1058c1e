package decide

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/moat-sec/moat/internal/allowlist"
	"github.com/moat-sec/moat/internal/event"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeHistory stands in for the store: it remembers every ban it is shown.
type fakeHistory struct {
	mu   sync.Mutex
	bans map[netip.Prefix][]time.Time
	err  error
}

func (h *fakeHistory) Offences(p netip.Prefix, since time.Time) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return 0, h.err
	}
	n := 0
	for _, t := range h.bans[p] {
		if !t.Before(since) {
			n++
		}
	}
	return n, nil
}

func (h *fakeHistory) record(ds ...event.Decision) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bans == nil {
		h.bans = map[netip.Prefix][]time.Time{}
	}
	for _, d := range ds {
		if d.Op == event.Ban {
			h.bans[d.Prefix] = append(h.bans[d.Prefix], d.Time)
		}
	}
}

// own is a Source for the host's own addresses.
type own []string

func (o own) Prefixes() ([]netip.Prefix, error) {
	ents, _ := o.Entries()
	var out []netip.Prefix
	for _, e := range ents {
		out = append(out, e.Prefix)
	}
	return out, nil
}

func (o own) Entries() ([]allowlist.Entry, error) {
	var out []allowlist.Entry
	for _, s := range o {
		a := netip.MustParseAddr(s)
		out = append(out, allowlist.Entry{Prefix: netip.PrefixFrom(a, a.BitLen()), Why: "own address eth0"})
	}
	return out, nil
}

func prefixes(ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// step is one finding and what must come of it.
type step struct {
	at         time.Duration // after t0
	addr       string
	jail       string
	unverified bool
	want       []string // decisions, as render prints them
	out        string   // outcome flags, as flags prints them
	why        string   // a substring of Outcome.Why
}

func render(d event.Decision) string {
	dur := "perm"
	if d.Duration != 0 {
		dur = d.Duration.String()
	}
	return fmt.Sprintf("%s %s %s #%d", d.Op, d.Prefix, dur, d.Offence)
}

func flags(o Outcome) string {
	var f []string
	for _, x := range []struct {
		on   bool
		name string
	}{{o.Allowlisted, "allowlisted"}, {o.AlreadyBanned, "already"}, {o.OverBudget, "over-budget"}, {o.Tripped, "tripped"}, {o.Aggregated, "aggregated"}} {
		if x.on {
			f = append(f, x.name)
		}
	}
	return strings.Join(f, ",")
}

// repeat makes n steps for addr, every gap, each expecting the outcome out
// and no decision.
func repeat(n int, gap time.Duration, addr string, unverified bool, out string) []step {
	var ss []step
	for i := range n {
		ss = append(ss, step{at: time.Duration(i) * gap, addr: addr, unverified: unverified, out: out})
	}
	return ss
}

func cat(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func base() Policy {
	return Policy{BanTime: 10 * time.Minute, Multiplier: 2, MaxBanTime: 7 * 24 * time.Hour, IPv6Prefix: 64, Budget: Budget{PerMinute: 1000}}
}

func with(f func(*Policy)) Policy {
	p := base()
	f(&p)
	return p
}

func TestScenarios(t *testing.T) {
	for _, c := range []struct {
		name  string
		pol   Policy
		allow []string        // configured
		own   own             // the host's addresses
		past  []time.Duration // earlier bans of past (relative to t0) in History
		pastP string
		steps []step
	}{
		{
			name:  "C3 allowlisted admin never banned",
			pol:   with(func(p *Policy) { p.PermanentAfter = 2; p.AggregateV4 = Aggregate{Count: 2, Bits: 24} }),
			allow: []string{"203.0.113.10/32"},
			steps: cat(
				repeat(50, time.Second, "203.0.113.10", false, "allowlisted"),       // bad SSH logins
				repeat(3, time.Second, "203.0.113.10", true, "allowlisted"),         // honeypot ports
				repeat(3, time.Second, "::ffff:203.0.113.10", false, "allowlisted"), // as a mapped address
				[]step{
					// Neighbours are banned, but never the /24 around the admin.
					{at: time.Minute, addr: "203.0.113.11", want: []string{"ban 203.0.113.11/32 10m0s #1"}},
					{at: time.Minute, addr: "203.0.113.12", want: []string{"ban 203.0.113.12/32 10m0s #1"}, why: "no aggregate ban: 203.0.113.0/24 holds the allowlisted 203.0.113.10/32 (config)"},
				}),
		},
		{
			name: "B4 built-in and own addresses never banned",
			pol:  base(),
			own:  own{"192.0.2.1", "2001:db8:a::1"},
			steps: func() []step {
				var ss []step
				for _, a := range []string{"127.0.0.1", "::1", "::ffff:127.0.0.1", "0.0.0.0", "::", "255.255.255.255", "224.0.0.1", "ff02::1", "169.254.169.254", "fe80::1", "fe80::1%eth0", "192.0.2.1", "::ffff:192.0.2.1", "2001:db8:a::1"} {
					ss = append(ss, step{addr: a, out: "allowlisted"}, step{addr: a, unverified: true, out: "allowlisted"})
				}
				return ss
			}(),
		},
		{
			name: "C4 loopback from a proxy: refused with a hint",
			pol:  base(),
			steps: cat(repeat(20, time.Second, "127.0.0.1", false, "allowlisted"),
				[]step{{addr: "127.0.0.1", out: "allowlisted", why: "enable PROXY protocol"}}),
		},
		{
			name: "IPv6 /64 grouping",
			pol:  base(),
			steps: []step{
				{addr: "2001:db8:1::1", want: []string{"ban 2001:db8:1::/64 10m0s #1"}},
				{at: time.Minute, addr: "2001:db8:1::2", out: "already"},
				{at: 2 * time.Minute, addr: "2001:db8:1:0:ffff:ffff:ffff:ffff", out: "already"},
				{at: 3 * time.Minute, addr: "2001:db8:1:1::1", want: []string{"ban 2001:db8:1:1::/64 10m0s #1"}},
				{at: 11 * time.Minute, addr: "2001:db8:1::3", want: []string{"ban 2001:db8:1::/64 20m0s #2"}},
			},
		},
		{
			name: "IPv6 /64 holding an own address: the address alone",
			pol:  base(),
			own:  own{"2001:db8:a::1"},
			steps: []step{
				{addr: "2001:db8:a::99", want: []string{"ban 2001:db8:a::99/128 10m0s #1"}, why: "banning 2001:db8:a::99 alone: 2001:db8:a::/64 holds the allowlisted 2001:db8:a::1/128 (own address eth0)"},
				{addr: "2001:db8:a::99", out: "already"},
				{addr: "2001:db8:a::98", want: []string{"ban 2001:db8:a::98/128 10m0s #1"}},
			},
		},
		{
			name: "IPv6 prefix 128",
			pol:  with(func(p *Policy) { p.IPv6Prefix = 128 }),
			steps: []step{
				{addr: "2001:db8:1::1", want: []string{"ban 2001:db8:1::1/128 10m0s #1"}},
				{addr: "2001:db8:1::2", want: []string{"ban 2001:db8:1::2/128 10m0s #1"}},
			},
		},
		{
			name: "escalation 10m 20m 40m capped",
			pol:  with(func(p *Policy) { p.MaxBanTime = 30 * time.Minute }),
			steps: []step{
				{addr: "198.51.100.7", want: []string{"ban 198.51.100.7/32 10m0s #1"}},
				{at: 5 * time.Minute, addr: "198.51.100.7", out: "already"},
				{at: 11 * time.Minute, addr: "198.51.100.7", want: []string{"ban 198.51.100.7/32 20m0s #2"}},
				{at: 32 * time.Minute, addr: "198.51.100.7", want: []string{"ban 198.51.100.7/32 30m0s #3"}}, // 40m, capped
				{at: 63 * time.Minute, addr: "198.51.100.7", want: []string{"ban 198.51.100.7/32 30m0s #4"}},
			},
		},
		{
			name: "escalation uncapped",
			pol:  with(func(p *Policy) { p.MaxBanTime = 0; p.Multiplier = 3 }),
			steps: []step{
				{addr: "198.51.100.7", want: []string{"ban 198.51.100.7/32 10m0s #1"}},
				{at: 11 * time.Minute, addr: "198.51.100.7", want: []string{"ban 198.51.100.7/32 30m0s #2"}},
				{at: 42 * time.Minute, addr: "198.51.100.7", want: []string{"ban 198.51.100.7/32 1h30m0s #3"}},
			},
		},
		{
			name:  "decay: old offences do not count",
			pol:   with(func(p *Policy) { p.Decay = 24 * time.Hour }),
			past:  []time.Duration{-72 * time.Hour, -25 * time.Hour, -23 * time.Hour},
			pastP: "198.51.100.7/32",
			steps: []step{
				{addr: "198.51.100.7", want: []string{"ban 198.51.100.7/32 20m0s #2"}}, // only the ban 23h ago counts
				// 23h30m on, the ban 23h before t0 has decayed; the one at t0 counts.
				{at: 23*time.Hour + 30*time.Minute, addr: "198.51.100.7", want: []string{"ban 198.51.100.7/32 20m0s #2"}},
				{at: 48 * time.Hour, addr: "198.51.100.7", want: []string{"ban 198.51.100.7/32 10m0s #1"}},
			},
		},
		{
			name: "permanent after 3",
			pol:  with(func(p *Policy) { p.PermanentAfter = 3 }),
			steps: []step{
				{addr: "198.51.100.7", want: []string{"ban 198.51.100.7/32 10m0s #1"}},
				{at: 11 * time.Minute, addr: "198.51.100.7", want: []string{"ban 198.51.100.7/32 20m0s #2"}},
				{at: 32 * time.Minute, addr: "198.51.100.7", want: []string{"ban 198.51.100.7/32 perm #3"}},
				{at: 1000 * time.Hour, addr: "198.51.100.7", out: "already"},
			},
		},
		{
			name: "jail overrides",
			pol: with(func(p *Policy) {
				p.Jails = map[string]JailPolicy{"recidive": {Permanent: true}, "web": {BanTime: time.Hour, MaxBanTime: 2 * time.Hour}}
			}),
			steps: []step{
				{addr: "198.51.100.7", jail: "web", want: []string{"ban 198.51.100.7/32 1h0m0s #1"}},
				{at: 61 * time.Minute, addr: "198.51.100.7", jail: "web", want: []string{"ban 198.51.100.7/32 2h0m0s #2"}},
				{at: 182 * time.Minute, addr: "198.51.100.7", jail: "web", want: []string{"ban 198.51.100.7/32 2h0m0s #3"}},
				{addr: "198.51.100.8", jail: "recidive", want: []string{"ban 198.51.100.8/32 perm #1"}},
				{addr: "198.51.100.9", jail: "sshd", want: []string{"ban 198.51.100.9/32 10m0s #1"}},
			},
		},
		{
			name: "/24 aggregation after 5 distinct addresses",
			pol:  with(func(p *Policy) { p.AggregateV4 = Aggregate{Count: 5, Bits: 24, Within: time.Hour} }),
			steps: []step{
				{addr: "198.51.100.1", want: []string{"ban 198.51.100.1/32 10m0s #1"}},
				{at: time.Minute, addr: "198.51.100.2", want: []string{"ban 198.51.100.2/32 10m0s #1"}},
				{at: 2 * time.Minute, addr: "198.51.100.3", want: []string{"ban 198.51.100.3/32 10m0s #1"}},
				{at: 3 * time.Minute, addr: "198.51.100.3", out: "already"},                                 // not distinct
				{at: 4 * time.Minute, addr: "198.51.101.4", want: []string{"ban 198.51.101.4/32 10m0s #1"}}, // another /24
				{at: 5 * time.Minute, addr: "198.51.100.4", want: []string{"ban 198.51.100.4/32 10m0s #1"}},
				{at: 6 * time.Minute, addr: "198.51.100.5", want: []string{"ban 198.51.100.5/32 10m0s #1", "ban 198.51.100.0/24 10m0s #1"}, out: "aggregated"},
				{at: 7 * time.Minute, addr: "198.51.100.99", out: "already"},
				// After the aggregate expires, counting starts again.
				{at: 20 * time.Minute, addr: "198.51.100.6", want: []string{"ban 198.51.100.6/32 10m0s #1"}},
			},
		},
		{
			name: "aggregation window",
			pol:  with(func(p *Policy) { p.AggregateV4 = Aggregate{Count: 3, Bits: 24, Within: time.Hour} }),
			steps: []step{
				{addr: "198.51.100.1", want: []string{"ban 198.51.100.1/32 10m0s #1"}},
				{at: 50 * time.Minute, addr: "198.51.100.2", want: []string{"ban 198.51.100.2/32 10m0s #1"}},
				{at: 61 * time.Minute, addr: "198.51.100.3", want: []string{"ban 198.51.100.3/32 10m0s #1"}}, // .1 no longer counts
				{at: 62 * time.Minute, addr: "198.51.100.4", want: []string{"ban 198.51.100.4/32 10m0s #1", "ban 198.51.100.0/24 10m0s #1"}, out: "aggregated"},
			},
		},
		{
			name:  "no aggregate over an allowlisted address",
			pol:   with(func(p *Policy) { p.AggregateV4 = Aggregate{Count: 3, Bits: 24, Within: time.Hour} }),
			allow: []string{"198.51.100.200/32"},
			steps: []step{
				{addr: "198.51.100.1", want: []string{"ban 198.51.100.1/32 10m0s #1"}},
				{addr: "198.51.100.2", want: []string{"ban 198.51.100.2/32 10m0s #1"}},
				{addr: "198.51.100.3", want: []string{"ban 198.51.100.3/32 10m0s #1"}, why: "no aggregate ban: 198.51.100.0/24 holds the allowlisted 198.51.100.200/32 (config)"},
				{addr: "198.51.100.4", want: []string{"ban 198.51.100.4/32 10m0s #1"}, why: "no aggregate ban"},
				{addr: "198.51.100.200", out: "allowlisted"},
			},
		},
		{
			name: "unverified findings do not aggregate",
			pol:  with(func(p *Policy) { p.AggregateV4 = Aggregate{Count: 3, Bits: 24, Within: time.Hour} }),
			steps: []step{
				{addr: "198.51.100.1", unverified: true, want: []string{"ban 198.51.100.1/32 10m0s #1"}},
				{addr: "198.51.100.2", unverified: true, want: []string{"ban 198.51.100.2/32 10m0s #1"}},
				{addr: "198.51.100.3", unverified: true, want: []string{"ban 198.51.100.3/32 10m0s #1"}},
				{addr: "198.51.100.4", unverified: true, want: []string{"ban 198.51.100.4/32 10m0s #1"}},
			},
		},
		{
			name: "IPv6 /64s aggregate to a /48",
			pol:  with(func(p *Policy) { p.AggregateV6 = Aggregate{Count: 3, Bits: 48} }),
			steps: []step{
				{addr: "2001:db8:1:1::1", want: []string{"ban 2001:db8:1:1::/64 10m0s #1"}},
				{addr: "2001:db8:1:1::2", out: "already"},
				{addr: "2001:db8:1:2::1", want: []string{"ban 2001:db8:1:2::/64 10m0s #1"}},
				{addr: "2001:db8:2:3::1", want: []string{"ban 2001:db8:2:3::/64 10m0s #1"}},
				{addr: "2001:db8:1:3::1", want: []string{"ban 2001:db8:1:3::/64 10m0s #1", "ban 2001:db8:1::/48 10m0s #1"}, out: "aggregated"},
				{addr: "2001:db8:1:4::1", out: "already"},
			},
		},
		{
			name: "budget",
			pol:  with(func(p *Policy) { p.Budget = Budget{PerMinute: 3} }),
			steps: []step{
				{at: 0, addr: "198.51.100.1", unverified: true, want: []string{"ban 198.51.100.1/32 10m0s #1"}},
				{at: 1 * time.Second, addr: "198.51.100.2", unverified: true, want: []string{"ban 198.51.100.2/32 10m0s #1"}},
				{at: 2 * time.Second, addr: "198.51.100.3", unverified: true, want: []string{"ban 198.51.100.3/32 10m0s #1"}},
				{at: 3 * time.Second, addr: "198.51.100.4", unverified: true, out: "over-budget,tripped", why: "ban budget spent"},
				{at: 4 * time.Second, addr: "198.51.100.5", unverified: true, out: "over-budget"},
				{at: 5 * time.Second, addr: "198.51.100.6", want: []string{"ban 198.51.100.6/32 10m0s #1"}}, // verified: no budget
				{at: 6 * time.Second, addr: "198.51.100.1", unverified: true, out: "already"},               // costs nothing
				{at: 60 * time.Second, addr: "198.51.100.4", unverified: true, want: []string{"ban 198.51.100.4/32 10m0s #1"}},
				{at: 61 * time.Second, addr: "198.51.100.5", unverified: true, want: []string{"ban 198.51.100.5/32 10m0s #1"}},
				{at: 61 * time.Second, addr: "198.51.100.7", unverified: true, out: "over-budget"}, // same episode: no new alert
				{at: 3 * time.Minute, addr: "198.51.100.8", unverified: true, want: []string{"ban 198.51.100.8/32 10m0s #1"}},
				{at: 3 * time.Minute, addr: "198.51.100.9", unverified: true, want: []string{"ban 198.51.100.9/32 10m0s #1"}},
				{at: 3 * time.Minute, addr: "198.51.100.10", unverified: true, want: []string{"ban 198.51.100.10/32 10m0s #1"}},
				{at: 3 * time.Minute, addr: "198.51.100.11", unverified: true, out: "over-budget,tripped"}, // a new episode
			},
		},
		{
			name: "zero budget: unverified findings never ban",
			pol:  with(func(p *Policy) { p.Budget = Budget{} }),
			steps: []step{
				{addr: "198.51.100.1", unverified: true, out: "over-budget,tripped"},
				{addr: "198.51.100.1", want: []string{"ban 198.51.100.1/32 10m0s #1"}},
			},
		},
		{
			name: "zero policy takes the defaults",
			pol:  Policy{},
			steps: []step{
				{addr: "198.51.100.1", want: []string{"ban 198.51.100.1/32 10m0s #1"}},
				{addr: "2001:db8::1", want: []string{"ban 2001:db8::/64 10m0s #1"}},
				{addr: "198.51.100.2", unverified: true, out: "over-budget,tripped"},
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			var srcs []allowlist.Source
			if c.own != nil {
				srcs = append(srcs, c.own)
			}
			allow := allowlist.New(prefixes(c.allow), srcs...)
			hist := &fakeHistory{}
			for _, at := range c.past {
				hist.record(event.Decision{Op: event.Ban, Prefix: netip.MustParsePrefix(c.pastP), Time: t0.Add(at)})
			}
			d := New(c.pol, allow, hist)
			for i, s := range c.steps {
				f := event.Finding{Time: t0.Add(s.at), Addr: netip.MustParseAddr(s.addr), Detector: "jail", Jail: s.jail, Reason: "test", Verified: !s.unverified}
				decs, out := d.Decide(f)
				hist.record(decs...)
				var got []string
				for _, dec := range decs {
					got = append(got, render(dec))
					if allow.Overlaps(dec.Prefix) {
						t.Errorf("step %d: %s overlaps the allowlist", i, dec.Prefix)
					}
					if !dec.Time.Equal(f.Time) || (dec.Duration != 0 && !dec.Expires.Equal(f.Time.Add(dec.Duration))) || (dec.Duration == 0 && !dec.Expires.IsZero()) {
						t.Errorf("step %d: %s: time %v expires %v", i, render(dec), dec.Time, dec.Expires)
					}
				}
				if diff := cmp.Diff(s.want, got); diff != "" {
					t.Errorf("step %d (%s at %v): decisions (-want +got):\n%s", i, s.addr, s.at, diff)
				}
				if g := flags(out); g != s.out {
					t.Errorf("step %d (%s at %v): outcome %q, want %q (why: %s)", i, s.addr, s.at, g, s.out, out.Why)
				}
				if !strings.Contains(out.Why, s.why) {
					t.Errorf("step %d (%s at %v): why %q, want it to say %q", i, s.addr, s.at, out.Why, s.why)
				}
				if out.Err != nil {
					t.Errorf("step %d: %v", i, out.Err)
				}
			}
		})
	}
}

// TestBudgetFlood is B5: 10,000 spoofed sources in one minute.
func TestBudgetFlood(t *testing.T) {
	pol := base()
	pol.Budget = Budget{PerMinute: 100}
	pol.AggregateV4 = Aggregate{Count: 5, Bits: 24}
	d := New(pol, allowlist.New(nil), &fakeHistory{})
	var bans, over, tripped, verified int
	for i := range 10_000 {
		f := event.Finding{
			Time: t0.Add(time.Duration(i) * 6 * time.Millisecond), // 10,000 in 60 s
			Addr: netip.AddrFrom4([4]byte{100, byte(i >> 8), byte(i), 1}),
		}
		if i%200 == 0 { // a real attacker now and then, with a handshake
			f.Addr, f.Verified = netip.AddrFrom4([4]byte{203, 0, byte(i / 200), 7}), true
		}
		decs, out := d.Decide(f)
		switch {
		case f.Verified:
			if len(decs) == 1 {
				verified++
			}
		case len(decs) > 0:
			bans += len(decs)
		case out.OverBudget:
			over++
		}
		if out.Tripped {
			tripped++
		}
	}
	if bans != 100 || over != 9950-100 || tripped != 1 || verified != 50 {
		t.Errorf("bans %d over %d tripped %d verified %d; want 100, %d, 1, 50", bans, over, tripped, verified, 9950-100)
	}
	if s := d.Stats(); s.OverBudget != uint64(over) || s.Bans != 150 || s.Findings != 10_000 {
		t.Errorf("stats %+v", s)
	}
}

// TestFloodBounded: 200,000 distinct offenders keep the tables at their caps.
func TestFloodBounded(t *testing.T) {
	pol := base()
	pol.AggregateV4 = Aggregate{Count: 5, Bits: 24}
	pol.AggregateV6 = Aggregate{Count: 5, Bits: 48}
	d := New(pol, allowlist.New(nil), nil)
	const n = MaxActive + MaxActive/5
	for i := range n {
		// Every offender in a prefix of its own: no aggregate ever
		// triggers, every candidate stays.
		a := netip.AddrFrom4([4]byte{10 + byte(i>>16), byte(i >> 8), byte(i), 1})
		if i%2 == 1 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, byte(i >> 16), byte(i >> 8), byte(i), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
		}
		d.Decide(event.Finding{Time: t0.Add(time.Duration(i) * time.Millisecond), Addr: a, Verified: true})
	}
	s := d.Stats()
	if s.Active != MaxActive || s.Candidates != MaxCandidates || s.Bans != n {
		t.Errorf("stats %+v: want %d active, %d candidates, %d bans", s, MaxActive, MaxCandidates, n)
	}
	total := int32(0)
	for _, l := range d.lengths {
		for _, c := range l {
			total += c
		}
	}
	if total != MaxActive {
		t.Errorf("lengths count %d prefixes, want %d", total, MaxActive)
	}
}

func TestHistoryError(t *testing.T) {
	d := New(base(), nil, &fakeHistory{err: errors.New("store down")})
	decs, out := d.Decide(event.Finding{Time: t0, Addr: netip.MustParseAddr("198.51.100.7"), Verified: true})
	if len(decs) != 1 || render(decs[0]) != "ban 198.51.100.7/32 10m0s #1" || out.Err == nil {
		t.Errorf("Decide with a failing History = %v, %+v; want a first-offence ban and the error", decs, out)
	}
}

func TestInvalidAddress(t *testing.T) {
	d := New(base(), nil, nil)
	if decs, out := d.Decide(event.Finding{Time: t0}); decs != nil || out.Why == "" {
		t.Errorf("Decide(no address) = %v, %+v", decs, out)
	}
	if d.Stats().Invalid != 1 {
		t.Error("not counted")
	}
}

func TestManual(t *testing.T) {
	allow := allowlist.New(prefixes([]string{"203.0.113.0/24"}), own{"192.0.2.1"})
	hist := &fakeHistory{}
	hist.record(event.Decision{Op: event.Ban, Prefix: netip.MustParsePrefix("198.51.100.7/32"), Time: t0.Add(-time.Hour)})
	d := New(base(), allow, hist)
	d.now = func() time.Time { return t0 }

	for _, c := range []struct {
		p      string
		dur    time.Duration
		force  bool
		want   string // render, or the error's substring
		forced bool   // a RefusedError even with force
	}{
		{"203.0.113.10/32", time.Hour, false, "203.0.113.0/24 (config)", false},
		{"203.0.113.10/32", time.Hour, true, "ban 203.0.113.10/32 1h0m0s #1", false},
		{"192.0.2.0/24", time.Hour, false, "192.0.2.1/32 (own address eth0)", false},
		{"127.0.0.1/32", time.Hour, false, "127.0.0.0/8 (loopback)", false},
		{"127.0.0.1/32", time.Hour, true, "127.0.0.0/8 (loopback)", true},
		{"0.0.0.0/0", 0, true, "127.0.0.0/8 (loopback)", true},
		{"::/0", 0, true, "::1/128 (loopback)", true},
		{"224.0.0.1/32", 0, false, "224.0.0.0/4 (multicast)", false},
		{"198.51.100.7/32", time.Hour, false, "ban 198.51.100.7/32 1h0m0s #2", false},
		{"::ffff:198.51.100.8/128", 0, false, "ban 198.51.100.8/32 perm #1", false},
		{"198.51.100.77/24", time.Hour, false, "ban 198.51.100.0/24 1h0m0s #1", false},
	} {
		dec, err := d.Manual(netip.MustParsePrefix(c.p), c.dur, "by hand", c.force)
		if strings.HasPrefix(c.want, "ban ") {
			if err != nil || render(dec) != c.want || dec.Detector != "manual" || dec.Reason != "by hand" || !dec.Time.Equal(t0) {
				t.Errorf("Manual(%s, %v, force %v) = %s %+v, %v; want %s", c.p, c.dur, c.force, render(dec), dec, err, c.want)
			}
			continue
		}
		re, ok := errors.AsType[*RefusedError](err)
		if !ok || !strings.Contains(err.Error(), c.want) || re.Forced != c.forced {
			t.Errorf("Manual(%s, force %v) = %v; want a refusal naming %s (forced %v)", c.p, c.force, err, c.want, c.forced)
		}
	}
	if _, err := d.Manual(netip.Prefix{}, 0, "", false); !errors.Is(err, ErrInvalidPrefix) {
		t.Errorf("Manual(invalid) = %v", err)
	}
	if _, err := d.Manual(netip.MustParsePrefix("198.51.100.9/32"), -time.Second, "", false); err == nil {
		t.Error("Manual with a negative duration accepted")
	}

	// A manual ban holds findings back; a manual unban lets them through.
	f := event.Finding{Time: t0.Add(time.Minute), Addr: netip.MustParseAddr("198.51.100.20"), Verified: true}
	if _, out := d.Decide(f); !out.AlreadyBanned {
		t.Errorf("finding inside a manual /24 ban: %+v", out)
	}
	u, err := d.ManualUnban(netip.MustParsePrefix("198.51.100.0/24"), "oops")
	if err != nil || u.Op != event.Unban || u.Prefix != netip.MustParsePrefix("198.51.100.0/24") {
		t.Fatalf("ManualUnban = %+v, %v", u, err)
	}
	if decs, _ := d.Decide(f); len(decs) != 1 {
		t.Errorf("after the unban: %v", decs)
	}
	if _, err := d.ManualUnban(netip.Prefix{}, ""); !errors.Is(err, ErrInvalidPrefix) {
		t.Errorf("ManualUnban(invalid) = %v", err)
	}

	hist.err = errors.New("store down")
	if _, err := d.Manual(netip.MustParsePrefix("198.51.100.30/32"), time.Hour, "", false); err == nil {
		t.Error("Manual hid a History error")
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultPolicy().Validate(); err != nil {
		t.Errorf("DefaultPolicy: %v", err)
	}
	if err := (Policy{}).Validate(); err != nil {
		t.Errorf("zero Policy: %v", err)
	}
	for field, p := range map[string]Policy{
		"bantime":         {BanTime: -1},
		"multiplier":      {Multiplier: 0.5},
		"permanent_after": {PermanentAfter: -1},
		"ipv6_prefix":     {IPv6Prefix: 129},
		"aggregate_v4":    {AggregateV4: Aggregate{Count: 5, Bits: 32}},
		"aggregate_v6":    {IPv6Prefix: 48, AggregateV6: Aggregate{Count: 5, Bits: 48}},
		"budget":          {Budget: Budget{PerMinute: MaxBudget + 1}},
		"jail web":        {Jails: map[string]JailPolicy{"web": {BanTime: -time.Second}}},
	} {
		err := p.Validate()
		pe, ok := errors.AsType[*PolicyError](err)
		if !ok || pe.Field != field {
			t.Errorf("%s: Validate() = %v", field, err)
		}
		// New copes anyway.
		New(p, nil, nil).Decide(event.Finding{Time: t0, Addr: netip.MustParseAddr("198.51.100.1"), Verified: true})
	}
}

func TestConcurrent(t *testing.T) {
	pol := base()
	pol.AggregateV4 = Aggregate{Count: 3, Bits: 24}
	d := New(pol, nil, &fakeHistory{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				d.Decide(event.Finding{Time: t0.Add(time.Duration(i) * time.Second), Addr: netip.AddrFrom4([4]byte{198, 51, byte(g), byte(i)}), Verified: i%2 == 0})
			}
		})
	}
	wg.Go(func() {
		for i := range 100 {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 0, byte(i)}), 32)
			d.Manual(p, time.Hour, "", false)
			d.ManualUnban(p, "")
			d.Stats()
		}
	})
	wg.Wait()
}

func TestLRU(t *testing.T) {
	c := newLRU[int, string](3)
	c.put(1, "a")
	c.put(2, "b")
	c.put(3, "c")
	c.get(1)      // 2 is now the least recently used
	c.put(4, "d") // evicts 2
	if _, ok := c.peek(2); ok || c.len() != 3 {
		t.Errorf("2 not evicted: len %d", c.len())
	}
	for _, k := range []int{1, 3, 4} {
		if _, ok := c.peek(k); !ok {
			t.Errorf("%d evicted", k)
		}
	}
	c.removeFunc(func(k int, _ string) bool { return k != 3 })
	if v, ok := c.get(3); !ok || v != "c" || c.len() != 1 {
		t.Errorf("removeFunc left %d entries", c.len())
	}
	c.remove(3)
	if c.len() != 0 || c.root.next != &c.root {
		t.Error("remove")
	}
}

func BenchmarkDecide(b *testing.B) {
	pol := DefaultPolicy()
	pol.AggregateV4 = Aggregate{Count: 5, Bits: 24}
	d := New(pol, allowlist.New(prefixes([]string{"203.0.113.0/24"})), &fakeHistory{})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		d.Decide(event.Finding{Time: t0.Add(time.Duration(i) * time.Millisecond), Addr: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Verified: true})
	}
}
