package decide

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moat-sec/moat/internal/allowlist"
	"github.com/moat-sec/moat/internal/event"
)

// History counts past bans; the store implements it.
type History interface {
	// Offences is how many bans of exactly p were decided at or after since.
	Offences(p netip.Prefix, since time.Time) (int, error)
}

// Outcome says, for the log, what became of one finding.
type Outcome struct {
	Allowlisted   bool   // the address is on the never-ban list; Why names the entry
	Why           string // why nothing was banned, or why less was banned than the policy asks
	OverBudget    bool   // an unverified finding was dropped: the ban budget is spent
	Tripped       bool   // the first drop after a quiet minute: raise one alert for the whole episode (see Stats)
	Aggregated    bool   // the decisions include an aggregate ban
	AlreadyBanned bool   // the offender's prefix, or an aggregate holding it, is banned already
	Err           error  // History failed: the ban counts as a first offence
}

// Stats are running counters, for the alert of a tripped budget and the
// status page.
type Stats struct {
	Findings, Bans, Aggregates, Allowlisted, AlreadyBanned, OverBudget, Invalid uint64

	Active, Candidates int // entries in the bounded tables
}

// Decider turns findings into decisions. It is safe for concurrent use;
// calls are serialised, History included, so History must not call back.
type Decider struct {
	pol   Policy
	allow *allowlist.List
	hist  History
	now   func() time.Time // wall clock, for manual bans

	mu       sync.Mutex
	clock    time.Time                      // the latest finding time: the clock of the budget and aggregation
	active   *lru[netip.Prefix, time.Time]  // bans decided here: prefix -> expiry (zero: permanent)
	lengths  [2][129]int32                  // active prefixes by family (0: IPv4) and length, to find the bans that hold an address
	cands    *lru[netip.Prefix, *candidate] // aggregate prefixes with banned members
	budget   window                         // unverified bans in the last minute
	lastDrop time.Time                      // when the budget last dropped a finding
	stats    Stats
}

// candidate is an aggregate prefix and its recently banned members, oldest
// first, at most Count of them.
type candidate struct {
	members []member
}

type member struct {
	p netip.Prefix
	t time.Time
}

// New builds a Decider. A nil allowlist still protects the built-in
// never-ban set; a nil History counts no earlier offences. See
// Policy.Validate for how invalid fields are treated.
func New(pol Policy, allow *allowlist.List, hist History) *Decider {
	if allow == nil {
		allow = allowlist.New(nil)
	}
	pol = pol.normalized()
	d := &Decider{
		pol:    pol,
		allow:  allow,
		hist:   hist,
		now:    time.Now,
		active: newLRU[netip.Prefix, time.Time](MaxActive),
		cands:  newLRU[netip.Prefix, *candidate](MaxCandidates),
		budget: window{max: pol.Budget.PerMinute},
	}
	d.active.onEvict = func(p netip.Prefix) { d.lengths[family(p.Addr())][p.Bits()]-- }
	return d
}

func family(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

// remember records a running ban of p.
func (d *Decider) remember(p netip.Prefix, expires time.Time) {
	if d.active.put(p, expires) {
		d.lengths[family(p.Addr())][p.Bits()]++
	}
}

// bannedAt returns a running ban decided here that holds a: one lookup per
// prefix length in use.
func (d *Decider) bannedAt(a netip.Addr) (netip.Prefix, time.Time, bool) {
	lengths := &d.lengths[family(a)]
	for bits := a.BitLen(); bits >= 0; bits-- {
		if lengths[bits] == 0 {
			continue
		}
		q := netip.PrefixFrom(a, bits).Masked()
		until, ok := d.active.peek(q)
		if !ok {
			continue
		}
		if !until.IsZero() && !until.After(d.clock) {
			d.active.remove(q)
			continue
		}
		return q, until, true
	}
	return netip.Prefix{}, time.Time{}, false
}

// Decide returns the decisions for one finding: none (allowlisted, already
// banned, or over budget, each said in the Outcome), one ban, or a ban and
// an aggregate ban. The finding's Time is the clock: the decisions are
// dated from it, and it drives the budget and the aggregation windows.
func (d *Decider) Decide(f event.Finding) ([]event.Decision, Outcome) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats.Findings++
	t := f.Time
	if t.IsZero() {
		t = d.now()
	}
	if t.After(d.clock) {
		d.clock = t
	}
	a := f.Addr.Unmap().WithZone("")
	if !a.IsValid() {
		d.stats.Invalid++
		return nil, Outcome{Why: "no valid address"}
	}
	if d.allow.Contains(a) {
		d.stats.Allowlisted++
		e, _ := d.allow.Match(single(a))
		return nil, Outcome{Allowlisted: true, Why: allowlisted(a, e)}
	}

	var out Outcome
	p := single(a)
	if a.Is6() {
		p = netip.PrefixFrom(a, d.pol.IPv6Prefix).Masked()
		if d.allow.Overlaps(p) {
			e, _ := d.allow.Match(p)
			out.Why = fmt.Sprintf("banning %s alone: %s holds the allowlisted %s", a, p, e)
			p = single(a)
		}
	}
	if q, until, ok := d.bannedAt(a); ok {
		d.stats.AlreadyBanned++
		why := fmt.Sprintf("%s is banned already, permanently", q)
		if !until.IsZero() {
			why = fmt.Sprintf("%s is banned already, until %s", q, until.Format(time.RFC3339))
		}
		return nil, Outcome{AlreadyBanned: true, Why: why}
	}
	if !f.Verified {
		if !d.budget.take(d.clock) {
			d.stats.OverBudget++
			out.OverBudget = true
			out.Tripped = d.lastDrop.IsZero() || d.clock.Sub(d.lastDrop) >= time.Minute
			d.lastDrop = d.clock
			out.Why = joinWhy(out.Why, fmt.Sprintf("ban budget spent (%d a minute for unverified findings): %s not banned", d.pol.Budget.PerMinute, a))
			return nil, out
		}
	}

	ban, err := d.ban(p, t, f.Jail, f.Detector, f.Reason, slices.Clone(f.Evidence))
	out.Err = err
	decs := []event.Decision{ban}
	if agg := d.aggregateOf(a, p); f.Verified && agg.IsValid() {
		ab, ok, why, err := d.aggregate(agg, p, t, f)
		if ok {
			decs = append(decs, ab)
			out.Aggregated = true
		}
		out.Why = joinWhy(out.Why, why)
		if out.Err == nil {
			out.Err = err
		}
	}
	return decs, out
}

// aggregateOf is the aggregate prefix that p, a member banned for a, counts
// towards; invalid when aggregation is off.
func (d *Decider) aggregateOf(a netip.Addr, p netip.Prefix) netip.Prefix {
	ag := d.pol.AggregateV4
	if a.Is6() {
		ag = d.pol.AggregateV6
	}
	if !ag.on() || p.Bits() <= ag.Bits {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(a, ag.Bits).Masked()
}

// ban decides one escalated ban of p and remembers it.
func (d *Decider) ban(p netip.Prefix, t time.Time, jail, detector, reason string, evidence []string) (event.Decision, error) {
	offences, err := d.offences(p, t)
	dur := d.duration(jail, offences)
	dec := event.Decision{
		Op: event.Ban, Prefix: p, Duration: dur, Time: t,
		Jail: jail, Detector: detector, Reason: reason, Evidence: evidence,
		Offence: offences + 1,
	}
	if dur != 0 {
		dec.Expires = t.Add(dur)
	}
	d.remember(p, dec.Expires)
	d.stats.Bans++
	return dec, err
}

func (d *Decider) offences(p netip.Prefix, t time.Time) (int, error) {
	if d.hist == nil {
		return 0, nil
	}
	n, err := d.hist.Offences(p, t.Add(-d.pol.Decay))
	if err != nil {
		return 0, fmt.Errorf("decide: offences of %s: %w", p, err)
	}
	return max(n, 0), nil
}

// duration is the ban time after offences earlier bans; 0 is permanent.
func (d *Decider) duration(jail string, offences int) time.Duration {
	base, limit := d.pol.BanTime, d.pol.MaxBanTime
	if j, ok := d.pol.Jails[jail]; ok {
		if j.Permanent {
			return 0
		}
		if j.BanTime > 0 {
			base = j.BanTime
		}
		if j.MaxBanTime > 0 {
			limit = j.MaxBanTime
		}
	}
	if d.pol.PermanentAfter > 0 && offences+1 >= d.pol.PermanentAfter {
		return 0
	}
	if limit <= 0 || limit > longest {
		limit = longest
	}
	f := float64(base) * math.Pow(d.pol.Multiplier, float64(offences))
	if math.IsNaN(f) || f >= float64(limit) {
		return limit
	}
	return time.Duration(f)
}

// aggregate counts member p of agg and bans agg once enough members were
// banned within the window, unless agg holds an allowlisted address.
func (d *Decider) aggregate(agg, p netip.Prefix, t time.Time, f event.Finding) (dec event.Decision, ok bool, why string, err error) {
	ag := d.pol.AggregateV4
	if agg.Addr().Is6() {
		ag = d.pol.AggregateV6
	}
	c, found := d.cands.get(agg)
	if !found {
		c = &candidate{members: make([]member, 0, min(ag.Count, 8))}
		d.cands.put(agg, c)
	}
	c.add(p, d.clock, ag)
	if len(c.members) < ag.Count {
		return event.Decision{}, false, "", nil
	}
	if e, held := d.allow.Match(agg); held {
		return event.Decision{}, false, fmt.Sprintf("no aggregate ban: %s holds the allowlisted %s", agg, e), nil
	}
	evidence := make([]string, len(c.members))
	for i, m := range c.members {
		evidence[i] = m.p.String()
	}
	d.cands.remove(agg)
	reason := fmt.Sprintf("%d banned in %s within %v", len(evidence), agg, ag.Within)
	dec, err = d.ban(agg, t, f.Jail, f.Detector, reason, evidence)
	d.stats.Aggregates++
	return dec, true, "", err
}

// add records member p at now, forgetting members older than the window
// and, beyond Count, the oldest.
func (c *candidate) add(p netip.Prefix, now time.Time, ag Aggregate) {
	c.members = slices.DeleteFunc(c.members, func(m member) bool {
		return m.p == p || now.Sub(m.t) >= ag.Within
	})
	if len(c.members) >= ag.Count {
		c.members = slices.Delete(c.members, 0, len(c.members)-ag.Count+1)
	}
	c.members = append(c.members, member{p, now})
}

// RefusedError is a manual ban that would hit the never-ban list.
type RefusedError struct {
	Prefix netip.Prefix
	Entry  allowlist.Entry // the entry it overlaps
	Forced bool            // refused although forced: the prefix holds a loopback address
}

func (e *RefusedError) Error() string {
	if e.Forced {
		return fmt.Sprintf("refusing to ban %s even when forced: it holds %s", e.Prefix, e.Entry)
	}
	return fmt.Sprintf("refusing to ban %s: it overlaps the allowlisted %s (force to ban anyway)", e.Prefix, e.Entry)
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// Manual decides a ban from an admin: of p, for dur (0: permanent), with no
// escalation. A prefix overlapping the allowlist is refused with a
// *RefusedError naming the entry unless force is set; one holding a
// loopback address is refused even then.
func (d *Decider) Manual(p netip.Prefix, dur time.Duration, reason string, force bool) (event.Decision, error) {
	p, err := manualPrefix(p)
	if err != nil {
		return event.Decision{}, err
	}
	if dur < 0 {
		return event.Decision{}, fmt.Errorf("decide: ban %s: negative duration %v", p, dur)
	}
	for _, lo := range loopback {
		if p.Overlaps(lo) {
			e, _ := d.allow.Match(lo)
			return event.Decision{}, &RefusedError{Prefix: p, Entry: e, Forced: force}
		}
	}
	if e, ok := d.allow.Match(p); ok && !force {
		return event.Decision{}, &RefusedError{Prefix: p, Entry: e}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.now()
	offences, err := d.offences(p, t)
	if err != nil {
		return event.Decision{}, err
	}
	dec := event.Decision{Op: event.Ban, Prefix: p, Duration: dur, Time: t, Detector: "manual", Reason: reason, Offence: offences + 1}
	if dur != 0 {
		dec.Expires = t.Add(dur)
	}
	d.remember(p, dec.Expires)
	d.stats.Bans++
	return dec, nil
}

// ManualUnban decides to lift the ban of p, and forgets what this Decider
// remembered inside p: its running bans and aggregate candidates.
func (d *Decider) ManualUnban(p netip.Prefix, reason string) (event.Decision, error) {
	p, err := manualPrefix(p)
	if err != nil {
		return event.Decision{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.active.removeFunc(func(q netip.Prefix, _ time.Time) bool { return p.Overlaps(q) })
	d.cands.removeFunc(func(q netip.Prefix, _ *candidate) bool { return p.Overlaps(q) })
	return event.Decision{Op: event.Unban, Prefix: p, Time: d.now(), Detector: "manual", Reason: reason}, nil
}

// ErrInvalidPrefix is returned for a manual ban or unban of no prefix.
var ErrInvalidPrefix = errors.New("decide: invalid prefix")

func manualPrefix(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, ErrInvalidPrefix
	}
	a := p.Addr().WithZone("")
	if a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked(), nil
	}
	return netip.PrefixFrom(a, p.Bits()).Masked(), nil
}

// Stats returns the counters so far.
func (d *Decider) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.Active, s.Candidates = d.active.len(), d.cands.len()
	return s
}

func single(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

func joinWhy(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// allowlisted explains a refusal; for the host's own addresses it adds the
// usual cause (C4): a proxy in front of the service hides the clients.
func allowlisted(a netip.Addr, e allowlist.Entry) string {
	s := fmt.Sprintf("%s is allowlisted: %s", a, e)
	if a.IsLoopback() || strings.HasPrefix(e.Why, "own address ") {
		s += "; if a proxy (sslh, a reverse proxy) fronts the service, every client looks like this address: enable PROXY protocol or log the real client address"
	}
	return s
}
