package enforce

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/moat-sec/moat/internal/event"
	"github.com/moat-sec/moat/internal/firewall"
	"github.com/moat-sec/moat/internal/nft"
)

// Kernel is what the enforcer needs of nftables.
type Kernel interface {
	AddElements(s nft.SetRef, elems []nft.Element) error
	DeleteElements(s nft.SetRef, elems []nft.Element) error
	HasSet(s nft.SetRef) (bool, error)
}

// Ban is a ban as the enforcer holds it: a prefix and when it ends.
type Ban struct {
	Prefix  netip.Prefix
	Expires time.Time // zero: permanent
}

// Enforcer keeps the kernel's ban sets equal to the bans it was given. It
// remembers what it wrote so that it never shortens a ban that is
// re-asserted (the kernel overwrites an element's timeout on re-add, since
// Linux 6.12), and so that it can write everything again when another tool
// removed the table.
type Enforcer struct {
	k    Kernel
	sets []nft.SetRef // v4, v6, v4 prefixes, v6 prefixes
	now  func() time.Time

	mu   sync.Mutex
	live map[netip.Prefix]time.Time
	cutq chan []netip.Prefix // nil: flows are not cut
}

// New returns an enforcer for the ban sets of table.
func New(k Kernel, table string, now func() time.Time) *Enforcer {
	if now == nil {
		now = time.Now
	}
	return &Enforcer{k: k, sets: firewall.BanSets(table), now: now, live: map[netip.Prefix]time.Time{}}
}

func (e *Enforcer) setFor(p netip.Prefix) nft.SetRef { return e.sets[setIndex(p)] }

// setIndex is p's set in Enforcer.sets.
func setIndex(p netip.Prefix) int {
	i := 0
	if p.Addr().Is6() {
		i = 1
	}
	if !p.IsSingleIP() {
		i += 2
	}
	return i
}

// later reports whether expiry a ends after b (zero is forever).
func later(a, b time.Time) bool {
	switch {
	case a.IsZero():
		return !b.IsZero()
	case b.IsZero():
		return false
	}
	return a.After(b)
}

// batch collects the element changes of one Apply, per set and prefix, so
// that a later change to a prefix in the same batch replaces an earlier one
// (a ban then an unban leaves the prefix out, not in).
type batch struct {
	add, del map[nft.SetRef]map[netip.Prefix]nft.Element
}

func newBatch() *batch {
	return &batch{add: map[nft.SetRef]map[netip.Prefix]nft.Element{}, del: map[nft.SetRef]map[netip.Prefix]nft.Element{}}
}

// addEl queues an element to add, cancelling a queued delete of it.
func (b *batch) addEl(s nft.SetRef, el nft.Element) { b.put(b.add, b.del, s, el) }

// delEl queues an element to delete, cancelling a queued add of it.
func (b *batch) delEl(s nft.SetRef, el nft.Element) { b.put(b.del, b.add, s, el) }

func (b *batch) put(into, cancel map[nft.SetRef]map[netip.Prefix]nft.Element, s nft.SetRef, el nft.Element) {
	delete(cancel[s], el.Prefix)
	if into[s] == nil {
		into[s] = map[netip.Prefix]nft.Element{}
	}
	into[s][el.Prefix] = el
}

// Apply writes decisions to the kernel: bans as elements with the time they
// have left, unbans as deletions. A ban never shortens one already there.
// Prefix bans that would overlap are merged into the wider prefix.
func (e *Enforcer) Apply(ds []event.Decision) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	b := newBatch()
	var errs []error
	for _, d := range ds {
		p := d.Prefix.Masked()
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("enforce: invalid prefix %v", d.Prefix))
			continue
		}
		switch d.Op {
		case event.Ban:
			exp := d.Expires
			if d.Permanent() {
				exp = time.Time{}
			}
			e.ban(b, p, exp, now)
		case event.Unban:
			if _, ok := e.live[p]; ok {
				delete(e.live, p)
				b.delEl(e.setFor(p), nft.Element{Prefix: p})
			}
		}
	}
	if err := e.flush(b); err != nil {
		errs = append(errs, err)
	}
	if e.cutq != nil {
		var banned []netip.Prefix
		for _, m := range b.add {
			for p := range m {
				banned = append(banned, p)
			}
		}
		if len(banned) > 0 {
			select {
			case e.cutq <- banned:
			default:
				// The worker is behind (a ban storm): the ban rules drop
				// these flows' packets anyway; their entries time out.
			}
		}
	}
	return errors.Join(errs...)
}

// CutFlows makes the enforcer delete the conntrack entries of newly banned
// sources with cut (nft.CutFlows), after their bans are in the kernel. It
// runs in its own goroutine, off the ban path: reading the conntrack table
// takes milliseconds, and the ban rules already drop the flows' packets.
func (e *Enforcer) CutFlows(cut func([]netip.Prefix) (int, error), logf func(string, ...any)) {
	e.cutq = make(chan []netip.Prefix, 64)
	go func() {
		for banned := range e.cutq {
			if _, err := cut(banned); err != nil && logf != nil {
				logf("enforce: cut flows: %v", err)
			}
		}
	}()
}

func (e *Enforcer) ban(b *batch, p netip.Prefix, exp, now time.Time) {
	if !exp.IsZero() && !exp.After(now) {
		return // already over
	}
	if old, ok := e.live[p]; ok && !later(exp, old) {
		return // never shorten; nothing to extend
	}
	if !p.IsSingleIP() {
		// Interval sets refuse overlapping elements: a wider live prefix
		// absorbs this one (extended if this one lasts longer); this one
		// absorbs the narrower live ones.
		for q, qexp := range e.live {
			if q.IsSingleIP() || q == p || q.Addr().Is6() != p.Addr().Is6() || !q.Overlaps(p) {
				continue
			}
			if q.Bits() <= p.Bits() {
				if later(exp, qexp) {
					e.live[q] = exp
					b.addEl(e.setFor(q), nft.Element{Prefix: q, Timeout: timeout(exp, now)})
				}
				return
			}
			if later(qexp, exp) {
				exp = qexp
			}
			delete(e.live, q)
			b.delEl(e.setFor(q), nft.Element{Prefix: q})
		}
	}
	e.live[p] = exp
	b.addEl(e.setFor(p), nft.Element{Prefix: p, Timeout: timeout(exp, now)})
}

// timeout is the kernel timeout for an expiry: 0 (none) when permanent,
// rounded up to whole milliseconds.
func timeout(exp, now time.Time) time.Duration {
	if exp.IsZero() {
		return 0
	}
	d := exp.Sub(now)
	if r := d % time.Millisecond; r != 0 {
		d += time.Millisecond - r
	}
	return max(d, time.Millisecond)
}

// flush sends deletions, then additions, one transaction per set (per
// maxTxElements additions). A deletion of an element the kernel no longer
// has (it expired) fails its transaction, so deletions are retried one by
// one.
func (e *Enforcer) flush(b *batch) error {
	var errs []error
	for s, m := range b.del {
		els := elems(m)
		if err := e.k.DeleteElements(s, els); err != nil {
			for _, el := range els {
				_ = e.k.DeleteElements(s, []nft.Element{el}) // gone already is fine
			}
		}
	}
	for s, m := range b.add {
		if err := e.add(s, elems(m)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// maxTxElements bounds the elements one transaction adds. The kernel's
// hash sets grow their table in a deferred worker; one transaction of a
// million elements keeps inserting into an outgrown table (the slow path
// of rhashtable_insert) and took 3.5-4.3 s, where transactions of 50,000
// took 1.4-2.3 s for the same million (Linux 6.18, bench/cmd/banscale).
const maxTxElements = 50000

// add adds elements to a set, maxTxElements per transaction.
func (e *Enforcer) add(s nft.SetRef, els []nft.Element) error {
	var errs []error
	for len(els) > 0 {
		n := min(len(els), maxTxElements)
		if err := e.k.AddElements(s, els[:n]); err != nil {
			errs = append(errs, fmt.Errorf("enforce: %w", err))
		}
		els = els[n:]
	}
	return errors.Join(errs...)
}

func elems(m map[netip.Prefix]nft.Element) []nft.Element {
	out := make([]nft.Element, 0, len(m))
	for _, el := range m {
		out = append(out, el)
	}
	return out
}

// Restore writes bans (from the store, at start) into the kernel, with the
// same rules as Apply (never shorten, prefixes merged), but built for a
// large store: single addresses go straight into per-set element lists
// (no Decision, no per-batch maps), and the conntrack cut is skipped.
// Restored bans were in force before, so their sources' flows were cut
// when they were banned; and the ban rules drop their packets ahead of the
// established-connection accept in any case. Cutting would cost a
// conntrack dump matched against every restored ban.
func (e *Enforcer) Restore(bans []Ban) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	if len(e.live) == 0 && len(bans) > 0 {
		e.live = make(map[netip.Prefix]time.Time, len(bans))
	}
	// Per set, by index: a map keyed by SetRef would hash two strings
	// per ban.
	var counts [4]int
	for _, bn := range bans {
		counts[setIndex(bn.Prefix)]++
	}
	var single [4][]nft.Element
	for i, n := range counts {
		if n > 0 {
			single[i] = make([]nft.Element, 0, n)
		}
	}
	rest := newBatch() // prefixes (overlaps to merge) and repeated addresses
	var errs []error
	for _, bn := range bans {
		p := bn.Prefix.Masked()
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("enforce: invalid prefix %v", bn.Prefix))
			continue
		}
		exp := bn.Expires
		if !exp.IsZero() && !exp.After(now) {
			continue // already over
		}
		if _, seen := e.live[p]; seen || !p.IsSingleIP() {
			e.ban(rest, p, exp, now)
			continue
		}
		e.live[p] = exp
		i := setIndex(p)
		single[i] = append(single[i], nft.Element{Prefix: p, Timeout: timeout(exp, now)})
	}
	for i, els := range single {
		if err := e.add(e.sets[i], els); err != nil {
			errs = append(errs, err)
		}
	}
	if err := e.flush(rest); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Reassert writes every live ban again: after another tool deleted the
// table and moat rebuilt it, the new sets are empty.
func (e *Enforcer) Reassert() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	b := newBatch()
	for p, exp := range e.live {
		if !exp.IsZero() && !exp.After(now) {
			delete(e.live, p)
			continue
		}
		b.addEl(e.setFor(p), nft.Element{Prefix: p, Timeout: timeout(exp, now)})
	}
	return e.flush(b)
}

// Forget drops bans that have expired from memory (the kernel expired them
// already), and returns how many are live.
func (e *Enforcer) Forget() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	for p, exp := range e.live {
		if !exp.IsZero() && !exp.After(now) {
			delete(e.live, p)
		}
	}
	return len(e.live)
}

// Live returns the bans the enforcer holds.
func (e *Enforcer) Live() []Ban {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Ban, 0, len(e.live))
	for p, exp := range e.live {
		out = append(out, Ban{Prefix: p, Expires: exp})
	}
	return out
}

// Clear forgets every ban and removes it from the kernel.
func (e *Enforcer) Clear() error {
	e.mu.Lock()
	ds := make([]event.Decision, 0, len(e.live))
	for p := range e.live {
		ds = append(ds, event.Decision{Op: event.Unban, Prefix: p})
	}
	e.mu.Unlock()
	return e.Apply(ds)
}

// Present reports whether all ban sets exist in the kernel.
func (e *Enforcer) Present() (bool, error) {
	for _, s := range e.sets {
		ok, err := e.k.HasSet(s)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}
