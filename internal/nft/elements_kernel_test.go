package nft

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func banTable(name string, extra string) *Table {
	return &Table{Name: name,
		Sets: []*Set{
			{Name: "ban_v4", Type: KeyIPv4, Timeouts: true, Keep: true},
			{Name: "banpfx_v6", Type: KeyIPv6, Interval: true, Timeouts: true, Keep: true},
			{Name: "other", Type: KeyIPv4, Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}},
		},
		Chains: []*Chain{{Name: "input", Hook: HookInput, Policy: VerdictAccept, Rules: []*Rule{
			{Exprs: []Expr{&NfProto{}, &Addr{Dir: Src, Set: "ban_v4"}, &Counter{}, &Verdict{Kind: VerdictDrop}}},
			{Exprs: []Expr{&NfProto{V6: true}, &Addr{Dir: Src, V6: true, Set: "banpfx_v6"}, &Counter{}, &Verdict{Kind: VerdictDrop}}},
			{Exprs: []Expr{&Counter{}}, Comment: extra},
		}}},
	}
}

// TestElementsAndKeep: elements with timeouts go in and come out, and a
// Replace of the table keeps the elements of its Keep sets while the rest
// of the table is rebuilt.
func TestElementsAndKeep(t *testing.T) {
	if !inNetNS(t) {
		return
	}
	c := openConn(t)
	if err := c.Replace(banTable("moat", "first")); err != nil {
		t.Fatal(err)
	}
	v4 := SetRef{Table: "moat", Name: "ban_v4"}
	pfx := SetRef{Table: "moat", Name: "banpfx_v6", V6: true, Interval: true}
	a := netip.MustParsePrefix("198.51.100.7/32")
	b := netip.MustParsePrefix("203.0.113.9/32")
	p := netip.MustParsePrefix("2001:db8:bad::/48")
	if err := c.AddElements(v4, []Element{{Prefix: a, Timeout: time.Hour}, {Prefix: b, Timeout: 10 * time.Minute}}); err != nil {
		t.Fatal(err)
	}
	if err := c.AddElements(pfx, []Element{{Prefix: p, Timeout: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if err := c.AddElements(v4, []Element{{Prefix: p}}); err == nil {
		t.Error("an IPv6 prefix went into an IPv4 set")
	}

	if err := c.Replace(banTable("moat", "second")); err != nil {
		t.Fatalf("replace keeping sets: %v", err)
	}
	listing := run(t, "", "nft", "list", "table", "inet", "moat")
	if !strings.Contains(listing, `comment "second"`) || strings.Contains(listing, `comment "first"`) {
		t.Errorf("the rules were not replaced:\n%s", listing)
	}
	got, err := c.Elements(v4)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(x, y Element) int { return x.Prefix.Addr().Compare(y.Prefix.Addr()) })
	if len(got) != 2 || got[0].Prefix != a || got[1].Prefix != b {
		t.Fatalf("after Replace, ban_v4 = %+v", got)
	}
	if got[0].Expires < 59*time.Minute || got[1].Expires > 10*time.Minute {
		t.Errorf("timeouts not kept: %+v", got)
	}
	gotP, err := c.Elements(pfx)
	if err != nil {
		t.Fatal(err)
	}
	if len(gotP) != 1 || gotP[0].Prefix != p {
		t.Errorf("after Replace, banpfx_v6 = %+v", gotP)
	}
	if err := c.DeleteElements(v4, []Element{{Prefix: a}}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteElements(pfx, []Element{{Prefix: p}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Elements(v4); len(got) != 1 || got[0].Prefix != b {
		t.Errorf("after delete: %+v", got)
	}
	if got, _ := c.Elements(pfx); len(got) != 0 {
		t.Errorf("after delete: %+v", got)
	}
	if ok, err := c.HasSet(v4); !ok || err != nil {
		t.Errorf("HasSet = %v, %v", ok, err)
	}
	if ok, _ := c.HasSet(SetRef{Table: "moat", Name: "nope"}); ok {
		t.Error("HasSet of a missing set")
	}
}

// TestAddManyElements: 100,000 timed bans in one call.
func TestAddManyElements(t *testing.T) {
	if !inNetNS(t) {
		return
	}
	c := openConn(t)
	if err := c.Replace(banTable("moat", "x")); err != nil {
		t.Fatal(err)
	}
	elems := make([]Element, 100000)
	for i := range elems {
		elems[i] = Element{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32), Timeout: time.Hour}
	}
	start := time.Now()
	if err := c.AddElements(SetRef{Table: "moat", Name: "ban_v4"}, elems); err != nil {
		t.Fatal(err)
	}
	t.Logf("100,000 elements in %v", time.Since(start))
	out := run(t, "", "nft", "-t", "list", "set", "inet", "moat", "ban_v4")
	if !strings.Contains(out, "ban_v4") {
		t.Fatal(out)
	}
}
