package decide

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// Policy says how long to ban, what to ban, and how many bans to allow.
// Fields left zero take the defaults below, except MaxBanTime (0: no cap),
// PermanentAfter (0: never), the aggregates (zero: off) and Budget (zero:
// unverified findings never ban). DefaultPolicy fills every field.
type Policy struct {
	BanTime        time.Duration         // first ban; default 10m
	Multiplier     float64               // each earlier offence multiplies the ban time; default 2
	MaxBanTime     time.Duration         // cap on escalated bans; 0 = no cap (DefaultPolicy: 1 week)
	Decay          time.Duration         // offences older than this do not count; default 30 days
	PermanentAfter int                   // the offence that makes a ban permanent (3: the third ban); 0 = never
	IPv6Prefix     int                   // an IPv6 offender bans its /IPv6Prefix; default 64, 128 = the address alone
	AggregateV4    Aggregate             // e.g. {5, 24, time.Hour}: 5 banned addresses of one /24 ban the /24
	AggregateV6    Aggregate             // e.g. {5, 48, time.Hour}: 5 banned /64s of one /48 ban the /48
	Budget         Budget                // bans from unverified (spoofable) findings
	Jails          map[string]JailPolicy // per-jail overrides, by event.Finding.Jail
}

// Aggregate bans a whole prefix once Count distinct members of it were
// banned within Within. Only verified findings count: spoofed sources must
// not get a whole network banned.
type Aggregate struct {
	Count  int           // distinct banned members (addresses, or IPv6 prefixes) that trigger; 0 = off
	Bits   int           // the aggregate's length: 24 bans the /24
	Within time.Duration // how long a member counts; default 1h
}

func (a Aggregate) on() bool { return a.Count > 0 }

// Budget caps the bans that unverified findings (event.Finding.Verified
// false: packet-level evidence whose source may be forged) may cause.
type Budget struct {
	PerMinute int // new bans in any 60 s; beyond, findings are dropped. 0 = unverified findings never ban
}

// JailPolicy overrides the ban times for one jail.
type JailPolicy struct {
	BanTime    time.Duration // 0: Policy.BanTime
	MaxBanTime time.Duration // 0: Policy.MaxBanTime
	Permanent  bool          // every ban from this jail is permanent
}

// Defaults and bounds.
const (
	DefaultBanTime    = 10 * time.Minute
	DefaultMultiplier = 2.0
	DefaultMaxBanTime = 7 * 24 * time.Hour
	DefaultDecay      = 30 * 24 * time.Hour
	DefaultIPv6Prefix = 64
	DefaultWithin     = time.Hour
	DefaultBudget     = 60 // bans per minute from unverified findings

	MaxCandidates = 10_000  // aggregate prefixes tracked at once (LRU)
	MaxActive     = 100_000 // running bans remembered to drop repeat findings (LRU)
	MaxBudget     = 100_000 // Budget.PerMinute ceiling: the budget keeps one timestamp per ban
	MaxCount      = 1_000   // Aggregate.Count ceiling

	// longest is the longest finite ban, for uncapped escalation.
	longest = 100 * 365 * 24 * time.Hour
)

// DefaultPolicy is moat's policy when the configuration says nothing:
// 10m doubling to a week, IPv6 offenders banned by /64, five banned /64s
// of one /56 within an hour ban the /56, IPv4 aggregation off, and 60
// bans a minute from unverified findings.
func DefaultPolicy() Policy {
	return Policy{
		BanTime:     DefaultBanTime,
		Multiplier:  DefaultMultiplier,
		MaxBanTime:  DefaultMaxBanTime,
		Decay:       DefaultDecay,
		IPv6Prefix:  DefaultIPv6Prefix,
		AggregateV6: Aggregate{Count: 5, Bits: 56, Within: DefaultWithin},
		Budget:      Budget{PerMinute: DefaultBudget},
	}
}

// PolicyError is one invalid field.
type PolicyError struct {
	Field, Msg string
}

func (e *PolicyError) Error() string { return "decide: " + e.Field + ": " + e.Msg }

// Validate reports every invalid field; it does no I/O. New accepts an
// invalid policy but replaces the invalid fields by defaults (and turns
// invalid aggregates off).
func (p Policy) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &PolicyError{field, fmt.Sprintf(format, args...)})
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"bantime", p.BanTime}, {"maxbantime", p.MaxBanTime}, {"decay", p.Decay}} {
		if f.d < 0 {
			bad(f.name, "negative duration %v", f.d)
		}
	}
	if p.Multiplier != 0 && (math.IsNaN(p.Multiplier) || p.Multiplier < 1 || p.Multiplier > 100) {
		bad("multiplier", "%v is not between 1 and 100", p.Multiplier)
	}
	if p.PermanentAfter < 0 {
		bad("permanent_after", "negative count %d", p.PermanentAfter)
	}
	if p.IPv6Prefix != 0 && (p.IPv6Prefix < 32 || p.IPv6Prefix > 128) {
		bad("ipv6_prefix", "/%d is not between /32 and /128", p.IPv6Prefix)
	}
	v6 := p.IPv6Prefix
	if v6 == 0 {
		v6 = DefaultIPv6Prefix
	}
	if err := p.AggregateV4.check(8, 31); err != "" {
		bad("aggregate_v4", "%s", err)
	}
	if err := p.AggregateV6.check(16, v6-1); err != "" {
		bad("aggregate_v6", "%s", err)
	}
	if p.Budget.PerMinute < 0 || p.Budget.PerMinute > MaxBudget {
		bad("budget", "%d bans a minute is not between 0 and %d", p.Budget.PerMinute, MaxBudget)
	}
	for _, name := range slices.Sorted(maps.Keys(p.Jails)) {
		if j := p.Jails[name]; j.BanTime < 0 || j.MaxBanTime < 0 {
			bad("jail "+name, "negative duration")
		}
	}
	return errors.Join(errs...)
}

func (a Aggregate) check(minBits, maxBits int) string {
	if !a.on() {
		if a.Count < 0 {
			return "negative count"
		}
		return ""
	}
	switch {
	case a.Count < 2 || a.Count > MaxCount:
		return fmt.Sprintf("count %d is not between 2 and %d", a.Count, MaxCount)
	case a.Bits < minBits || a.Bits > maxBits:
		return fmt.Sprintf("/%d is not between /%d and /%d", a.Bits, minBits, maxBits)
	case a.Within < 0:
		return "negative window"
	}
	return ""
}

// normalized fills defaults and replaces what Validate would refuse.
func (p Policy) normalized() Policy {
	if p.BanTime <= 0 {
		p.BanTime = DefaultBanTime
	}
	if math.IsNaN(p.Multiplier) || p.Multiplier < 1 || p.Multiplier > 100 {
		p.Multiplier = DefaultMultiplier
	}
	if p.MaxBanTime < 0 {
		p.MaxBanTime = 0
	}
	if p.Decay <= 0 {
		p.Decay = DefaultDecay
	}
	if p.PermanentAfter < 0 {
		p.PermanentAfter = 0
	}
	if p.IPv6Prefix < 32 || p.IPv6Prefix > 128 {
		p.IPv6Prefix = DefaultIPv6Prefix
	}
	if p.AggregateV4.check(8, 31) != "" {
		p.AggregateV4 = Aggregate{}
	}
	if p.AggregateV6.check(16, p.IPv6Prefix-1) != "" {
		p.AggregateV6 = Aggregate{}
	}
	for _, a := range []*Aggregate{&p.AggregateV4, &p.AggregateV6} {
		if a.on() && a.Within == 0 {
			a.Within = DefaultWithin
		}
	}
	p.Budget.PerMinute = min(max(p.Budget.PerMinute, 0), MaxBudget)
	p.Jails = maps.Clone(p.Jails) // the caller may go on editing its map
	return p
}
