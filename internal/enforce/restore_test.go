package enforce

import (
	"net/netip"
	"testing"
	"time"
)

// TestRestore: restored bans land in the right sets with the time they
// have left; expired ones are skipped; a repeated address keeps the longer
// ban; overlapping prefixes are merged as Apply merges them; large sets go
// in several transactions.
func TestRestore(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	k := newFake()
	e := New(k, "moat", func() time.Time { return now })
	a := netip.MustParsePrefix("198.51.100.7/32")
	bans := []Ban{
		{Prefix: a, Expires: now.Add(time.Hour)},
		{Prefix: netip.MustParsePrefix("198.51.100.8/32"), Expires: now.Add(-time.Second)}, // over
		{Prefix: netip.MustParsePrefix("2001:db8::1/128")},                                 // permanent
		{Prefix: a, Expires: now.Add(2 * time.Hour)},                                       // repeated, longer
		{Prefix: netip.MustParsePrefix("2001:db8:1:1::/64"), Expires: now.Add(3 * time.Hour)},
		{Prefix: netip.MustParsePrefix("2001:db8:1::/48"), Expires: now.Add(time.Hour)},
	}
	if err := e.Restore(bans); err != nil {
		t.Fatal(err)
	}
	if got := k.sets["ban_v4"]; len(got) != 1 || got[a] != 2*time.Hour {
		t.Errorf("ban_v4 = %v, want only %s with 2h", got, a)
	}
	if got, ok := k.sets["ban_v6"][netip.MustParsePrefix("2001:db8::1/128")]; !ok || got != 0 {
		t.Errorf("permanent ban: %v %v", got, ok)
	}
	if got := k.sets["banpfx_v6"]; len(got) != 1 || got[netip.MustParsePrefix("2001:db8:1::/48")] != 3*time.Hour {
		t.Errorf("banpfx_v6 = %v, want the /48 with the /64's 3h", got)
	}
	if n := len(e.Live()); n != 3 {
		t.Errorf("%d live, want 3", n)
	}

	k = newFake()
	e = New(k, "moat", func() time.Time { return now })
	many := make([]Ban, maxTxElements*2+1)
	for i := range many {
		many[i] = Ban{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)}), 32), Expires: now.Add(time.Hour)}
	}
	if err := e.Restore(many); err != nil {
		t.Fatal(err)
	}
	if len(k.sets["ban_v4"]) != len(many) || k.adds != 3 {
		t.Errorf("%d elements in %d transactions, want %d in 3", len(k.sets["ban_v4"]), k.adds, len(many))
	}
}
