package firewall

import (
	"strconv"

	"github.com/moat-sec/moat/internal/nft"
	"github.com/moat-sec/moat/internal/policy"
)

// RedirectMark is the conntrack mark bit moat sets on the connections it
// redirects to a honeypot. Only connections with this bit and a
// destination NAT (moat's own) get past the bans chain: a banned source's
// connection that another tool DNATs (Docker's port mappings, say) does
// not carry it and is dropped as before. The other bits of the mark are
// left alone.
const RedirectMark uint32 = 0x40000000

const chainRedirect = "redirects"

// redirectChain sends new connections from hostile sources on a real
// service port to a honeypot: a nat chain at prerouting, which sees only
// the first packet of each connection, marks the connection and rewrites
// its destination. Only packets addressed to this host are redirected
// (never traffic routed through it), and never from an allowlisted source.
func (c *compiler) redirectChain() *nft.Chain {
	if len(c.p.Redirects) == 0 {
		return nil
	}
	ch := &nft.Chain{Name: chainRedirect, Type: nft.ChainNAT, Hook: nft.HookPrerouting, Priority: c.p.Priority, Policy: nft.VerdictAccept}
	for i := range c.p.Redirects {
		r := &c.p.Redirects[i]
		for _, v6 := range []bool{false, true} {
			addr, port, ok := r.Target(v6)
			if !ok {
				continue
			}
			allow := AllowSetV4
			if v6 {
				allow = AllowSetV6
			}
			var sources [][]nft.Expr
			if r.Banned {
				for _, set := range banSetsOf(v6) {
					sources = append(sources, []nft.Expr{&nft.Addr{Dir: nft.Src, V6: v6, Set: set}})
				}
			} else {
				fam := famV4
				if v6 {
					fam = famV6
				}
				switch f4, f6 := r.From.Families(); {
				case v6 && f6 || !v6 && f4:
					src := c.addr(nft.Src, r.From, fam) // one address match
					src[0].(*nft.Addr).Negate = r.Except
					sources = append(sources, src)
				case r.Except:
					sources = append(sources, nil) // From has no prefix of this family: everyone is outside it
				}
			}
			for _, src := range sources {
				exprs := []nft.Expr{&nft.FibLocal{}, &nft.NfProto{V6: v6}}
				exprs = append(exprs, src...)
				exprs = append(exprs, &nft.Addr{Dir: nft.Src, V6: v6, Set: allow, Negate: true},
					&nft.Port{Dir: nft.Dst, Proto: protoNum(r.Proto), Ranges: []nft.PortRange{{First: r.Port, Last: r.Port}}},
					&nft.CtMarkSet{Bits: RedirectMark}, &nft.Counter{}, &nft.DNAT{Addr: addr, Port: port})
				ch.Rules = append(ch.Rules, &nft.Rule{Exprs: exprs, Comment: RedirectComment(i + 1)})
			}
		}
	}
	return ch
}

// banSetsOf names the ban sets of one family: addresses, then prefixes.
func banSetsOf(v6 bool) []string {
	if v6 {
		return []string{BanSetV6, BanPrefixSetV6}
	}
	return []string{BanSetV4, BanPrefixSetV4}
}

// RedirectComment is the comment on the kernel rules of redirect n (1-based).
func RedirectComment(n int) string { return "moat redirect " + strconv.Itoa(n) }

// redirectedRule lets the connections moat redirected past the bans (and
// everything after them): the honeypot must see the banned source.
func redirectedRule() *nft.Rule {
	return &nft.Rule{Exprs: []nft.Expr{
		&nft.CtMark{Mask: RedirectMark, Value: RedirectMark}, &nft.CtStatus{Bits: nft.CtStatusDNAT}, &nft.Counter{}, accept(),
	}, Comment: "moat redirected to a honeypot"}
}

// hasRedirects reports whether p redirects anything.
func hasRedirects(p *policy.Policy) bool { return p != nil && len(p.Redirects) > 0 }
