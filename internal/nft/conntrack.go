package nft

import (
	"fmt"
	"net/netip"

	"github.com/ti-mo/conntrack"
)

// CutFlows deletes the conntrack entries of connections that banned
// sources opened (or that this host opened to them), so that an open
// session does not outlive its ban. The ban rules already drop such
// packets before the established-connection accept; without its entry the
// connection is also gone from conntrack at once instead of timing out. It
// returns how many entries it deleted.
func CutFlows(banned []netip.Prefix) (int, error) {
	if len(banned) == 0 {
		return 0, nil
	}
	c, err := conntrack.Dial(nil)
	if err != nil {
		return 0, fmt.Errorf("nft: conntrack: %w", err)
	}
	defer c.Close()
	flows, err := c.Dump(nil)
	if err != nil {
		return 0, fmt.Errorf("nft: conntrack dump: %w", err)
	}
	single := map[netip.Addr]bool{}
	var wide []netip.Prefix
	for _, p := range banned {
		if p.IsSingleIP() {
			single[p.Addr()] = true
		} else {
			wide = append(wide, p)
		}
	}
	hit := func(a netip.Addr) bool {
		if single[a] {
			return true
		}
		for _, p := range wide {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	n := 0
	for _, f := range flows {
		if hit(f.TupleOrig.IP.SourceAddress.Unmap()) || hit(f.TupleOrig.IP.DestinationAddress.Unmap()) {
			if err := c.Delete(f); err == nil {
				n++
			}
		}
	}
	return n, nil
}
