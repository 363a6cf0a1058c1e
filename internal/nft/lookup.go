package nft

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// HasElement reports whether the set holds p: one netlink GET of one key
// (what `nft get element` does), so its cost does not grow with the set,
// unlike Elements. For an interval set the kernel answers for the interval
// that contains p's first address, so a wider element covering p counts.
// A missing set is an error wrapping unix.ENOENT.
func (c *Conn) HasElement(s SetRef, p netip.Prefix) (bool, error) {
	nes, err := s.elements([]Element{{Prefix: p}})
	if err != nil {
		return false, fmt.Errorf("nft: get element of set %s: %w", s.Name, err)
	}
	c.mu.Lock()
	got, err := c.nc.FindSetElements(s.set(), nes[:1])
	c.mu.Unlock()
	if err == nil {
		return len(got) > 0, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return false, fmt.Errorf("nft: get element of set %s: %w", s.Name, err)
	}
	// ENOENT: no such element, or no such set.
	ok, serr := c.HasSet(s)
	switch {
	case serr != nil:
		return false, serr
	case !ok:
		return false, fmt.Errorf("nft: get element of set %s: %w", s.Name, unix.ENOENT)
	}
	return false, nil
}
