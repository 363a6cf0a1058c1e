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
	n := 0
	for _, f := range flows {
		src := f.TupleOrig.IP.SourceAddress.Unmap()
		dst := f.TupleOrig.IP.DestinationAddress.Unmap()
		for _, p := range banned {
			if p.Contains(src) || p.Contains(dst) {
				if err := c.Delete(f); err == nil {
					n++
				}
				break
			}
		}
	}
	return n, nil
}
