package firewall

import (
	"github.com/moat-sec/moat/internal/nft"
)

// Ban set names: single addresses and prefixes, per family. Each element
// carries its own timeout, so bans expire in the kernel even when the
// daemon is not running.
const (
	BanSetV4       = "ban_v4"
	BanSetV6       = "ban_v6"
	BanPrefixSetV4 = "banpfx_v4"
	BanPrefixSetV6 = "banpfx_v6"
	chainBans      = "bans"
)

// BanSets are the kernel sets that hold bans in table.
func BanSets(table string) []nft.SetRef {
	return []nft.SetRef{
		{Table: table, Name: BanSetV4},
		{Table: table, Name: BanSetV6, V6: true},
		{Table: table, Name: BanPrefixSetV4, Interval: true},
		{Table: table, Name: BanPrefixSetV6, V6: true, Interval: true},
	}
}

// banSets declares the ban sets. They are kept across Replace, so
// reloading the policy never lifts a ban. The single-address sets are
// dynamic: trap rules add to them from the packet path.
func banSets() []*nft.Set {
	return []*nft.Set{
		{Name: BanSetV4, Type: nft.KeyIPv4, Dynamic: true, Timeouts: true, Keep: true, Comment: "banned addresses"},
		{Name: BanSetV6, Type: nft.KeyIPv6, Dynamic: true, Timeouts: true, Keep: true, Comment: "banned addresses"},
		{Name: BanPrefixSetV4, Type: nft.KeyIPv4, Interval: true, Timeouts: true, Keep: true, Comment: "banned networks"},
		{Name: BanPrefixSetV6, Type: nft.KeyIPv6, Interval: true, Timeouts: true, Keep: true, Comment: "banned networks"},
	}
}

// bansChain drops everything from a banned source. Base chains jump here
// before the established-connection guard, so a ban also cuts the
// connections the source already has open.
func bansChain() *nft.Chain {
	ch := &nft.Chain{Name: chainBans}
	for _, s := range []struct {
		set string
		v6  bool
	}{{BanSetV4, false}, {BanSetV6, true}, {BanPrefixSetV4, false}, {BanPrefixSetV6, true}} {
		ch.Rules = append(ch.Rules, &nft.Rule{
			Exprs:   []nft.Expr{&nft.NfProto{V6: s.v6}, &nft.Addr{Dir: nft.Src, V6: s.v6, Set: s.set}, &nft.Counter{}, drop()},
			Comment: "moat ban " + s.set,
		})
	}
	return ch
}

func jumpBans() *nft.Rule {
	return &nft.Rule{Exprs: []nft.Expr{&nft.Verdict{Kind: nft.VerdictJump, Chain: chainBans}}}
}

// CompileBans is the table the ban engine needs when the firewall policy
// itself is not enabled: the ban sets and their drop rules on the input and
// forward hooks, and nothing else (everything not banned is accepted).
func CompileBans(table string, priority int) *nft.Table {
	t := &nft.Table{Name: table, Sets: banSets()}
	for _, h := range []struct {
		name string
		hook nft.Hook
	}{{chainIn, nft.HookInput}, {chainFwd, nft.HookForward}} {
		t.Chains = append(t.Chains, &nft.Chain{Name: h.name, Hook: h.hook, Priority: priority, Policy: nft.VerdictAccept, Rules: []*nft.Rule{jumpBans()}})
	}
	t.Chains = append(t.Chains, bansChain())
	return t
}
