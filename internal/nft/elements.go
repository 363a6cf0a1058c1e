package nft

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// SetRef names an address set in an inet table, with its shape.
type SetRef struct {
	Table, Name string
	V6          bool
	Interval    bool // prefixes; otherwise single addresses
}

// Element is one address or prefix in a set, with its timeout (0: the
// set's default, or none). Expires is filled when reading: the time left.
type Element struct {
	Prefix  netip.Prefix
	Timeout time.Duration
	Expires time.Duration
}

func (s SetRef) set() *nftables.Set {
	kt := nftables.TypeIPAddr
	if s.V6 {
		kt = nftables.TypeIP6Addr
	}
	return &nftables.Set{
		Table:    &nftables.Table{Name: s.Table, Family: nftables.TableFamilyINet},
		Name:     s.Name,
		Interval: s.Interval,
		KeyType:  kt,
		// Without this the library silently drops element timeouts, and
		// a ban would never expire. A set without the timeout flag
		// refuses timed elements, which is the error we want.
		HasTimeout: true,
	}
}

func (s SetRef) elements(elems []Element) ([]nftables.SetElement, error) {
	out := make([]nftables.SetElement, 0, len(elems)*2)
	for _, e := range elems {
		if err := checkPrefix(e.Prefix, s.V6); err != nil {
			return nil, err
		}
		if e.Timeout < 0 {
			return nil, invalidf("negative timeout for %s", e.Prefix)
		}
		if !s.Interval {
			if !e.Prefix.IsSingleIP() {
				return nil, invalidf("prefix %s in the single-address set %s", e.Prefix, s.Name)
			}
			out = append(out, nftables.SetElement{Key: addrBytes(e.Prefix.Addr()), Timeout: e.Timeout})
			continue
		}
		r := prefixRange(e.Prefix)
		end, ok := next(r.hi)
		if !ok {
			out = append(out, nftables.SetElement{Key: r.lo, IntervalOpen: true, Timeout: e.Timeout})
			continue
		}
		// The timeout belongs to the start element; the kernel refuses one
		// on an interval's end.
		out = append(out,
			nftables.SetElement{Key: r.lo, Timeout: e.Timeout},
			nftables.SetElement{Key: end, IntervalEnd: true})
	}
	return out, nil
}

// AddElements adds elements to a set in one transaction. Adding an element
// that is there already replaces its timeout (Linux 6.12 and later), so
// callers that must never shorten a ban pass the longer timeout.
func (c *Conn) AddElements(s SetRef, elems []Element) error {
	return c.elementOp("add to", s, elems, (*nftables.Conn).SetAddElements)
}

// DeleteElements removes elements from a set in one transaction. Removing
// an element that is not there fails the whole transaction.
func (c *Conn) DeleteElements(s SetRef, elems []Element) error {
	return c.elementOp("delete from", s, elems, (*nftables.Conn).SetDeleteElements)
}

func (c *Conn) elementOp(op string, s SetRef, elems []Element, fn func(*nftables.Conn, *nftables.Set, []nftables.SetElement) error) error {
	if len(elems) == 0 {
		return nil
	}
	nes, err := s.elements(elems)
	if err != nil {
		return fmt.Errorf("nft: %s set %s: %w", op, s.Name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := fn(c.nc, s.set(), nes); err != nil {
		_ = c.nc.Flush()
		return fmt.Errorf("nft: %s set %s: %w", op, s.Name, err)
	}
	if err := c.nc.Flush(); err != nil {
		return fmt.Errorf("nft: %s set %s: %w", op, s.Name, err)
	}
	return nil
}

// FlushSet removes every element of a set.
func (c *Conn) FlushSet(s SetRef) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nc.FlushSet(s.set())
	if err := c.nc.Flush(); err != nil {
		return fmt.Errorf("nft: flush set %s: %w", s.Name, err)
	}
	return nil
}

// HasSet reports whether the set exists.
func (c *Conn) HasSet(s SetRef) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.nc.GetSetByName(&nftables.Table{Name: s.Table, Family: nftables.TableFamilyINet}, s.Name)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENOENT):
		return false, nil
	}
	return false, fmt.Errorf("nft: find set %s: %w", s.Name, err)
}

// Elements lists a set's elements with the time each has left. Reading a
// large set is slow (about 2 s per 100,000 elements): use it for
// reconciliation, not on every tick.
func (c *Conn) Elements(s SetRef) ([]Element, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	raw, err := c.nc.GetSetElements(s.set())
	if err != nil {
		return nil, fmt.Errorf("nft: list set %s: %w", s.Name, err)
	}
	bits := 32
	if s.V6 {
		bits = 128
	}
	var out []Element
	if !s.Interval {
		for _, e := range raw {
			a, ok := netip.AddrFromSlice(e.Key)
			if !ok {
				continue
			}
			out = append(out, Element{Prefix: netip.PrefixFrom(a, bits), Timeout: e.Timeout, Expires: e.Expires})
		}
		return out, nil
	}
	// The kernel lists interval sets as start and end elements, in no
	// promised order: pair each start with the smallest end above it.
	var starts, ends []nftables.SetElement
	for _, e := range raw {
		if e.IntervalEnd {
			ends = append(ends, e)
		} else {
			starts = append(starts, e)
		}
	}
	for _, st := range starts {
		lo, ok := netip.AddrFromSlice(st.Key)
		if !ok {
			continue
		}
		var hi netip.Addr // exclusive end; invalid = to the top of the space
		for _, en := range ends {
			a, ok := netip.AddrFromSlice(en.Key)
			if ok && lo.Less(a) && (!hi.IsValid() || a.Less(hi)) {
				hi = a
			}
		}
		for _, p := range rangePrefixes(lo, hi, bits) {
			out = append(out, Element{Prefix: p, Timeout: st.Timeout, Expires: st.Expires})
		}
	}
	return out, nil
}

// rangePrefixes covers [lo, hi) with the fewest prefixes (hi invalid: to
// the end of the address space).
func rangePrefixes(lo, hi netip.Addr, bits int) []netip.Prefix {
	var out []netip.Prefix
	for lo.IsValid() && (!hi.IsValid() || lo.Less(hi)) {
		n := bits
		for n > 0 {
			p := netip.PrefixFrom(lo, n-1)
			if p.Masked().Addr() != lo {
				break
			}
			last := lastAddr(p)
			if hi.IsValid() && !last.Less(hi) {
				break
			}
			n--
		}
		p := netip.PrefixFrom(lo, n)
		out = append(out, p)
		last := lastAddr(p)
		lo = last.Next()
		if len(out) > 1<<16 {
			break // a pathological listing; never loop forever
		}
	}
	return out
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// SetElements makes a set hold exactly elems, in one transaction (flush,
// then add), so that packets never see it empty or half-filled. Elements
// with a timeout get a fresh one on every kernel.
func (c *Conn) SetElements(s SetRef, elems []Element) error {
	nes, err := s.elements(elems)
	if err != nil {
		return fmt.Errorf("nft: fill set %s: %w", s.Name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	set := s.set()
	// Sets without the timeout flag (the allow sets) are filled with
	// untimed elements; timed ones need the flag on the set.
	set.HasTimeout = slices.ContainsFunc(elems, func(e Element) bool { return e.Timeout > 0 })
	c.nc.FlushSet(set)
	if len(nes) > 0 {
		if err := c.nc.SetAddElements(set, nes); err != nil {
			_ = c.nc.Flush()
			return fmt.Errorf("nft: fill set %s: %w", s.Name, err)
		}
	}
	if err := c.nc.Flush(); err != nil {
		return fmt.Errorf("nft: fill set %s: %w", s.Name, err)
	}
	return nil
}
