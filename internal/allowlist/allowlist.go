package allowlist

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// Entry is one never-ban prefix and why it is there: "config", "loopback",
// "own address eth0", "ssh session", "gateway eth0", "resolver", "runtime"...
type Entry struct {
	Prefix netip.Prefix
	Why    string
}

func (e Entry) String() string { return e.Prefix.String() + " (" + e.Why + ")" }

// Source is a dynamic part of the list, read again on every Refresh.
type Source interface {
	Prefixes() ([]netip.Prefix, error)
}

// Explainer is an optional ability of a Source: its prefixes, each with its
// own reason. Refresh prefers it to Prefixes; the prefixes of a Source
// without it are listed as "runtime".
type Explainer interface {
	Entries() ([]Entry, error)
}

// maxSourceEntries bounds what one source may contribute; a source that
// returns more is treated as failing (its last good set is kept).
const maxSourceEntries = 1 << 16

// Builtin is the part of the list that no configuration removes.
var Builtin = []Entry{
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("0.0.0.0/32"), "unspecified"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
}

// List is the never-ban set that every engine consults. Lookups are safe for
// concurrent use and never block on a Refresh.
type List struct {
	cur atomic.Pointer[table]

	mu      sync.Mutex // serialises Refresh
	fixed   []Entry    // built-in, then configured
	sources []Source
	last    [][]Entry // per source: the last set it returned without error
}

// New builds the list from the configured prefixes ("config") and the
// dynamic sources, and reads the sources once. A source that fails here
// contributes nothing until a Refresh succeeds; call Refresh to learn
// about errors.
func New(static []netip.Prefix, dynamic ...Source) *List {
	l := &List{sources: dynamic, last: make([][]Entry, len(dynamic))}
	l.fixed = fixed(static)
	l.Refresh()
	return l
}

func fixed(static []netip.Prefix) []Entry {
	out := slices.Clone(Builtin)
	for _, p := range static {
		if p, ok := normPrefix(p); ok {
			out = append(out, Entry{p, "config"})
		}
	}
	return out
}

// SetStatic replaces the configured prefixes (on reload). It reads no
// source: the dynamic parts stay as the last Refresh left them.
func (l *List) SetStatic(static []netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fixed = fixed(static)
	l.swap()
}

// swap publishes the fixed entries and the sources' last good sets; l.mu
// must be held.
func (l *List) swap() {
	all := slices.Clone(l.fixed)
	for _, ents := range l.last {
		all = append(all, ents...)
	}
	l.cur.Store(build(all))
}

// Refresh reads every source again and swaps the new set in. A source that
// fails keeps its last good prefixes; the errors are returned joined.
func (l *List) Refresh() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for i, s := range l.sources {
		ents, err := entriesOf(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("allowlist: refresh %T: %w", s, err))
			continue
		}
		l.last[i] = ents
	}
	l.swap()
	return errors.Join(errs...)
}

func entriesOf(s Source) ([]Entry, error) {
	var ents []Entry
	if e, ok := s.(Explainer); ok {
		got, err := e.Entries()
		if err != nil {
			return nil, err
		}
		ents = got
	} else {
		ps, err := s.Prefixes()
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			ents = append(ents, Entry{p, "runtime"})
		}
	}
	if len(ents) > maxSourceEntries {
		return nil, fmt.Errorf("%d entries, more than the %d allowed", len(ents), maxSourceEntries)
	}
	out := ents[:0:0]
	for _, e := range ents {
		if p, ok := normPrefix(e.Prefix); ok {
			out = append(out, Entry{p, e.Why})
		}
	}
	return out, nil
}

// Contains reports whether a must never be banned. IPv4-mapped IPv6
// addresses are read as IPv4, zones are ignored.
func (l *List) Contains(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	return l.Overlaps(netip.PrefixFrom(a, a.BitLen()))
}

// Overlaps reports whether p holds an address that must never be banned,
// or lies inside a never-ban prefix: a ban of p must not happen.
func (l *List) Overlaps(p netip.Prefix) bool {
	t := l.cur.Load()
	p, ok := normPrefix(p)
	if !ok {
		return false
	}
	_, ok = t.find(p)
	return ok
}

// Match returns the entry that keeps p from being banned, for the log: the
// most specific entry overlapping p (among those around the lowest
// allowlisted address in p); on a tie the earliest (built-in, configured,
// then the sources in order).
func (l *List) Match(p netip.Prefix) (Entry, bool) {
	t := l.cur.Load()
	p, ok := normPrefix(p)
	if !ok {
		return Entry{}, false
	}
	i, ok := t.find(p)
	if !ok {
		return Entry{}, false
	}
	best := -1
	for _, j := range t.spans(p)[i].ents {
		e := t.entries[j]
		if e.Prefix.Overlaps(p) && (best < 0 || e.Prefix.Bits() > t.entries[best].Prefix.Bits()) {
			best = int(j)
		}
	}
	if best < 0 { // cannot happen: a span is the union of its entries
		return Entry{Prefix: p, Why: "allowlisted"}, true
	}
	return t.entries[best], true
}

// Entries lists the current set: built-in, then configured, then the
// sources in order. Duplicates are listed once.
func (l *List) Entries() []Entry {
	return slices.Clone(l.cur.Load().entries)
}

// normPrefix masks p and reads an IPv4-mapped prefix as IPv4.
func normPrefix(p netip.Prefix) (netip.Prefix, bool) {
	if !p.IsValid() {
		return netip.Prefix{}, false
	}
	a := p.Addr().WithZone("")
	if a.Is4In6() {
		if p.Bits() < 96 {
			// ::ffff:0:0/95 and wider also cover real IPv6 space; keep as is.
			return netip.PrefixFrom(a, p.Bits()).Masked(), true
		}
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked(), true
	}
	return netip.PrefixFrom(a, p.Bits()).Masked(), true
}

// u128 is an address as a number, for range arithmetic.
type u128 struct{ hi, lo uint64 }

func (a u128) cmp(b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

func (a u128) next() (u128, bool) {
	if a.lo != ^uint64(0) {
		return u128{a.hi, a.lo + 1}, true
	}
	if a.hi != ^uint64(0) {
		return u128{a.hi + 1, 0}, true
	}
	return a, false
}

// bounds returns the first and last address of p, which must be masked.
func bounds(p netip.Prefix) (first, last u128) {
	a := p.Addr()
	if a.Is4() {
		b := a.As4()
		v := uint64(binary.BigEndian.Uint32(b[:]))
		host := uint64(1)<<(32-p.Bits()) - 1
		return u128{0, v}, u128{0, v | host}
	}
	b := a.As16()
	first = u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
	last = first
	switch n := 128 - p.Bits(); {
	case n >= 128:
		last = u128{^uint64(0), ^uint64(0)}
	case n >= 64:
		last.lo = ^uint64(0)
		last.hi |= (uint64(1) << (n - 64)) - 1
	case n > 0:
		last.lo |= (uint64(1) << n) - 1
	}
	return first, last
}

// span is a run of addresses covered by one or more entries.
type span struct {
	first, last u128
	ents        []int32 // indexes into table.entries
}

// table is one immutable snapshot of the list.
type table struct {
	entries []Entry
	v4, v6  []span // sorted and disjoint
}

func (t *table) spans(p netip.Prefix) []span {
	if p.Addr().Is4() {
		return t.v4
	}
	return t.v6
}

// find returns the index of the first span overlapping p.
func (t *table) find(p netip.Prefix) (int, bool) {
	ss := t.spans(p)
	first, last := bounds(p)
	i, _ := slices.BinarySearchFunc(ss, first, func(s span, k u128) int { return s.last.cmp(k) })
	if i < len(ss) && ss[i].first.cmp(last) <= 0 {
		return i, true
	}
	return 0, false
}

func build(all []Entry) *table {
	t := &table{}
	seen := map[Entry]bool{}
	for _, e := range all {
		if !seen[e] {
			seen[e] = true
			t.entries = append(t.entries, e)
		}
	}
	for _, fam := range []bool{true, false} {
		var ss []span
		for i, e := range t.entries {
			if e.Prefix.Addr().Is4() == fam {
				f, l := bounds(e.Prefix)
				ss = append(ss, span{f, l, []int32{int32(i)}})
			}
		}
		slices.SortStableFunc(ss, func(a, b span) int { return a.first.cmp(b.first) })
		var merged []span
		for _, s := range ss {
			if n := len(merged); n > 0 {
				m := &merged[n-1]
				after, ok := m.last.next()
				if !ok || s.first.cmp(after) <= 0 { // overlapping or adjacent
					if s.last.cmp(m.last) > 0 {
						m.last = s.last
					}
					m.ents = append(m.ents, s.ents...)
					continue
				}
			}
			merged = append(merged, s)
		}
		if fam {
			t.v4 = merged
		} else {
			t.v6 = merged
		}
	}
	return t
}
