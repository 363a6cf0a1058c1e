package nft

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestHasElement: one-key lookups in a single-address set and an interval
// set, present and absent, and a missing set.
func TestHasElement(t *testing.T) {
	if !inNetNS(t) {
		return
	}
	c := openConn(t)
	if err := c.Replace(banTable("moat", "x")); err != nil {
		t.Fatal(err)
	}
	v4 := SetRef{Table: "moat", Name: "ban_v4"}
	pfx := SetRef{Table: "moat", Name: "banpfx_v6", V6: true, Interval: true}
	a := netip.MustParsePrefix("198.51.100.7/32")
	if err := c.AddElements(v4, []Element{{Prefix: a, Timeout: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if err := c.AddElements(pfx, []Element{{Prefix: netip.MustParsePrefix("2001:db8:bad::/48"), Timeout: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		s    SetRef
		p    string
		want bool
	}{
		{v4, "198.51.100.7/32", true},
		{v4, "198.51.100.8/32", false},
		{pfx, "2001:db8:bad::/48", true},
		{pfx, "2001:db8:bad:1::/64", true}, // inside the /48
		{pfx, "2001:db8:bae::/48", false},
	} {
		got, err := c.HasElement(tc.s, netip.MustParsePrefix(tc.p))
		if err != nil || got != tc.want {
			t.Errorf("HasElement(%s, %s) = %v, %v; want %v", tc.s.Name, tc.p, got, err, tc.want)
		}
	}
	if _, err := c.HasElement(SetRef{Table: "moat", Name: "nosuch"}, a); !errors.Is(err, unix.ENOENT) {
		t.Errorf("missing set: err %v, want ENOENT", err)
	}
}
