package firewall

import (
	"github.com/moat-sec/moat/internal/nft"
)

// The first-SYN hold: sets and chain.
const (
	chainHold     = "hold"
	holdFreshV4   = "hold_fresh_v4"
	holdFreshV6   = "hold_fresh_v6"
	holdWaitV4    = "hold_wait_v4"
	holdWaitV6    = "hold_wait_v6"
	holdPassV4    = "hold_pass_v4"
	holdPassV6    = "hold_pass_v6"
	holdSetSize   = 65536
	holdWaitAfter = 30 // a held source must come back within this many windows
)

// holdSets declares the per-source sets of the first-SYN hold: fresh (seen
// within the window), wait (seen, may come back) and pass (came back).
func (c *compiler) holdSets() []*nft.Set {
	s := c.p.Scan
	if len(s.Hold) == 0 {
		return nil
	}
	var out []*nft.Set
	for _, v6 := range []bool{false, true} {
		kt, fresh, wait, pass := nft.KeyIPv4, holdFreshV4, holdWaitV4, holdPassV4
		if v6 {
			kt, fresh, wait, pass = nft.KeyIPv6, holdFreshV6, holdWaitV6, holdPassV6
		}
		out = append(out,
			&nft.Set{Name: fresh, Type: kt, Dynamic: true, Timeout: s.HoldWindow, Size: holdSetSize, Comment: "first SYN held: too soon to come back"},
			&nft.Set{Name: wait, Type: kt, Dynamic: true, Timeout: holdWaitAfter * s.HoldWindow, Size: holdSetSize, Comment: "first SYN held: may come back"},
			&nft.Set{Name: pass, Type: kt, Dynamic: true, Timeout: s.HoldPass, Size: holdSetSize, Comment: "came back: a real client"},
		)
	}
	return out
}

// holdJump sends the first SYN of a new connection to a held port to the
// hold chain.
func (c *compiler) holdJump() *nft.Rule {
	s := c.p.Scan
	if len(s.Hold) == 0 {
		return nil
	}
	return &nft.Rule{Exprs: []nft.Expr{
		&nft.Port{Dir: nft.Dst, Proto: nft.ProtoTCP, Ranges: portList(s.Hold)},
		&nft.TCPFlags{Mask: nft.TCPFin | nft.TCPSyn | nft.TCPRst | nft.TCPAck, Value: nft.TCPSyn},
		&nft.CtState{States: nft.CtNew},
		&nft.Verdict{Kind: nft.VerdictJump, Chain: chainHold},
	}, Comment: GuardComment("in", "hold")}
}

// holdChain holds back the first SYN a new source sends to a held port.
// A real client's kernel sends the SYN again after its retransmission
// timeout (1 s on Linux), after the hold window: that one passes, and the
// source passes freely for a while. A scanner's parallel probes all land
// inside the window and are dropped, so it learns nothing of the held
// ports before its probes of closed ports get it blocked by the scan
// meter. Held SYNs are not counted by the meter: a browser's parallel
// connections are not a scan. Allowlisted sources are never held.
func (c *compiler) holdChain() *nft.Chain {
	if len(c.p.Scan.Hold) == 0 {
		return nil
	}
	ch := &nft.Chain{Name: chainHold}
	for _, v6 := range []bool{false, true} {
		allow, fresh, wait, pass := AllowSetV4, holdFreshV4, holdWaitV4, holdPassV4
		if v6 {
			allow, fresh, wait, pass = AllowSetV6, holdFreshV6, holdWaitV6, holdPassV6
		}
		fam := &nft.NfProto{V6: v6}
		src := func(set string) *nft.Addr { return &nft.Addr{Dir: nft.Src, V6: v6, Set: set} }
		ret := &nft.Verdict{Kind: nft.VerdictReturn}
		ch.Rules = append(ch.Rules,
			&nft.Rule{Exprs: []nft.Expr{fam, src(allow), ret}},
			&nft.Rule{Exprs: []nft.Expr{fam, src(pass), ret}},
			&nft.Rule{Exprs: []nft.Expr{fam, src(fresh), &nft.Counter{}, drop()}, Comment: GuardComment("in", "hold burst")},
			&nft.Rule{Exprs: []nft.Expr{fam, src(wait), &nft.SetAdd{Set: pass, V6: v6}, &nft.Counter{}, ret}, Comment: GuardComment("in", "hold passed")},
			&nft.Rule{Exprs: []nft.Expr{fam, &nft.SetAdd{Set: fresh, V6: v6}, &nft.SetAdd{Set: wait, V6: v6}, &nft.Counter{}, drop()}, Comment: GuardComment("in", "hold first")},
		)
	}
	return ch
}
