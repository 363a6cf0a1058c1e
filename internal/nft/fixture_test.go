package nft

import (
	"net/netip"
	"time"
)

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

func rule(comment string, exprs ...Expr) *Rule { return &Rule{Exprs: exprs, Comment: comment} }

var (
	accept = &Verdict{Kind: VerdictAccept}
	drop   = &Verdict{Kind: VerdictDrop}
)

// allTable uses every expression type, and the corner cases of each that
// nft encodes differently: whole-byte and other prefixes, one value and
// many, ranges that touch or reach the end of the key space, implicit
// dependencies.
func allTable() *Table {
	group := uint16(5)
	return &Table{
		Name: "moat_all",
		Sets: []*Set{
			{Name: "ban4", Type: KeyIPv4, Interval: true, Timeout: time.Hour, Size: 65536, Comment: "banned v4",
				Prefixes: pfx("198.51.100.0/24", "192.0.2.1/32", "255.255.255.0/24", "203.0.113.0/25", "203.0.113.128/25", "192.0.2.1/32")},
			{Name: "ban6", Type: KeyIPv6, Prefixes: pfx("2001:db8::3/128", "2001:db8::1/128", "2001:db8::2/128")},
			{Name: "kban4", Type: KeyIPv4, Dynamic: true, Timeouts: true, Keep: true},
			{Name: "kban6", Type: KeyIPv6, Dynamic: true, Timeouts: true, Keep: true},
			{Name: "nets6", Type: KeyIPv6, Interval: true, Prefixes: pfx("::/8", "2001:db8::/32", "ff00::/8")},
			{Name: "ports", Type: KeyPort, Interval: true, Ports: []PortRange{{22, 22}, {8000, 8080}, {65000, 65535}}},
			{Name: "svc", Type: KeyPort, Ports: []PortRange{{443, 443}, {80, 80}}},
			{Name: "meter4", Type: KeyIPv4, Dynamic: true, Timeout: time.Minute, Size: 1024},
			{Name: "meter6", Type: KeyIPv6, Dynamic: true, Timeout: 1500 * time.Millisecond},
			{Name: "cc6", Type: KeyIPv6, Dynamic: true},
			{Name: "empty", Type: KeyIPv4, Interval: true},
		},
		Chains: []*Chain{
			{Name: "input", Hook: HookInput, Priority: 0, Policy: VerdictDrop, Rules: []*Rule{
				rule("", &IfName{In: true, Name: "lo"}, accept),
				rule("", &CtMark{Mask: 0x40000000, Value: 0x40000000}, &CtStatus{Bits: CtStatusDNAT}, &Counter{}, accept),
				rule("", &CtMark{Mask: 0x3, Value: 0x1}, drop),
				rule("", &RPFilter{Strict: true}, &Counter{}, drop),
				rule("", &NfProto{V6: true}, &RPFilter{}, drop),
				rule("", &CtState{States: CtEstablished | CtRelated}, accept),
				rule("", &CtState{States: CtNew, Negate: true}, drop),
				rule("", &CtState{States: CtEstablished | CtRelated, Negate: true}, &Counter{}),
				rule("", &CtState{States: CtInvalid | CtUntracked}, drop),
				rule("", &NfProto{}, &Addr{Dir: Src, Set: "ban4"}, drop),
				rule("", &Addr{Dir: Src, Prefixes: pfx("10.0.0.0/8", "192.168.1.1/32"), Negate: true}, drop),
				rule("", &NfProto{}, &Addr{Dir: Dst, Prefixes: pfx("10.1.0.0/16")}, accept),
				rule("", &NfProto{}, &Addr{Dir: Dst, Prefixes: pfx("10.1.2.3/32"), Negate: true}, accept),
				rule("", &NfProto{}, &Addr{Dir: Src, Prefixes: pfx("10.16.0.0/12")}, accept),
				rule("", &NfProto{}, &Addr{Dir: Src, Prefixes: pfx("10.1.2.3/20")}, accept),
				rule("", &NfProto{}, &Addr{Dir: Src, Prefixes: pfx("0.0.0.0/0")}, accept),
				rule("", &NfProto{}, &Addr{Dir: Src, Prefixes: pfx("192.0.2.1/32", "192.0.2.2/32", "192.0.2.1/32")}, accept),
				rule("", &NfProto{}, &Addr{Dir: Src, Prefixes: pfx("10.0.0.128/25", "10.0.0.0/25", "10.0.0.7/32")}, accept),
				rule("", &NfProto{V6: true}, &Addr{Dir: Src, V6: true, Prefixes: pfx("2001:db8::/32")}, accept),
				rule("", &NfProto{V6: true}, &Addr{Dir: Dst, V6: true, Prefixes: pfx("2001:db8::/33"), Negate: true}, accept),
				rule("", &Addr{Dir: Src, V6: true, Prefixes: pfx("2001:db8::1/128", "fe80::/10")}, accept),
				rule("", &Addr{Dir: Dst, V6: true, Prefixes: pfx("::1/128")}, accept),
				rule("", &NfProto{V6: true}, &Addr{Dir: Src, V6: true, Set: "ban6", Negate: true}, accept),
				rule("", &Addr{Dir: Dst, V6: true, Set: "nets6"}, accept),
				rule("", &Port{Dir: Dst, Proto: ProtoTCP, Ranges: []PortRange{{22, 22}}}, accept),
				rule("", &Port{Dir: Src, Proto: ProtoUDP, Ranges: []PortRange{{1000, 2000}}}, accept),
				rule("", &Port{Dir: Dst, Proto: ProtoTCP, Ranges: []PortRange{{0, 65535}}}, accept),
				rule("", &Port{Dir: Dst, Proto: ProtoTCP, Ranges: []PortRange{{80, 80}, {443, 443}, {8000, 8080}}}, accept),
				rule("", &Port{Dir: Dst, Proto: ProtoUDP, Ranges: []PortRange{{53, 53}, {123, 123}, {53, 53}}}, accept),
				rule("", &Port{Dir: Dst, Proto: ProtoTCP, Ranges: []PortRange{{65535, 65535}, {22, 23}, {24, 24}}}, accept),
				rule("", &Port{Dir: Src, Proto: ProtoTCP, Ranges: []PortRange{{0, 10}, {20, 20}}}, accept),
				rule("", &L4Proto{Proto: ProtoTCP}, &Port{Dir: Dst, Proto: ProtoTCP, Set: "ports"}, accept),
				rule("", &Port{Dir: Dst, Proto: ProtoUDP, Set: "svc"}, accept),
				rule("", &TCPFlags{Mask: TCPFin | TCPSyn | TCPRst | TCPAck, Value: TCPSyn}, &Counter{}),
				rule("", &TCPFlags{Mask: TCPSyn | TCPAck, Value: TCPSyn, Negate: true}, drop),
				rule("", &TCPFlags{Mask: TCPSyn}, accept),
				rule("", &TCPFlags{Mask: 0xff, Value: TCPSyn}, accept),
				rule("", &ICMPType{Types: []uint8{8}}, &Limit{Rate: 10, Unit: time.Second, Burst: 5}, accept),
				rule("", &ICMPType{V6: true, Types: []uint8{128, 135, 128}}, accept),
				rule("", &NfProto{}, &ICMPType{Types: []uint8{3, 11, 12}}, accept),
				rule("", &L4Proto{Proto: ProtoICMP}, &ICMPType{Types: []uint8{200}}, accept),
				rule("", &L4Proto{Proto: 47}, accept),
				rule("", &L4Proto{Proto: ProtoICMPv6}, accept),
				rule("", &Limit{Rate: 100, Unit: time.Minute, Over: true}, drop),
				rule("", &Limit{Rate: 1, Unit: 24 * time.Hour}, &Limit{Rate: 2, Unit: 7 * 24 * time.Hour, Burst: 1}, accept),
				rule("", &NfProto{}, &Meter{Set: "meter4", Stmt: &Limit{Rate: 10, Unit: time.Second, Burst: 20, Over: true}}, drop),
				rule("", &NfProto{}, &Addr{Dir: Src, Set: "ban4", Negate: true}, &SetAdd{Set: "kban4", Timeout: 24 * time.Hour}, drop),
				rule("", &NfProto{V6: true}, &Meter{Set: "meter6", V6: true, Stmt: &Limit{Rate: 2, Unit: time.Second, Burst: 5, Over: true}}, &SetAdd{Set: "kban6", V6: true}, &Counter{}),
				rule("", &Meter{Set: "meter4", PrefixLen: 24, Stmt: &Limit{Rate: 3, Unit: time.Hour}}, accept),
				rule("", &Meter{Set: "meter4", PrefixLen: 32, Stmt: &Limit{Rate: 3, Unit: time.Hour}}, accept),
				rule("", &NfProto{V6: true}, &Meter{Set: "meter6", V6: true, PrefixLen: 64, Stmt: &Limit{Rate: 5, Unit: time.Minute}}, accept),
				rule("", &NfProto{V6: true}, &Meter{Set: "cc6", V6: true, PrefixLen: 56, Stmt: &CtCount{N: 20, Over: true}}, &Verdict{Kind: VerdictRejectTCPReset}),
				rule("", &Meter{Set: "cc6", V6: true, Stmt: &CtCount{N: 5}}, accept),
				rule("", &Log{Prefix: "in: ", Level: "info"}),
				rule("", &Log{Prefix: "grp: ", Group: &group}),
				rule("", &Log{Level: "debug", Group: &group}),
				rule("", &Log{}),
				rule("", &Counter{}, &Verdict{Kind: VerdictJump, Chain: "sub"}),
				rule("", &Port{Dir: Dst, Proto: ProtoTCP, Ranges: []PortRange{{23, 23}}}, &Verdict{Kind: VerdictRejectTCPReset}),
				rule("", &IfName{In: true, Name: "eth0"}, &Counter{}, &Verdict{Kind: VerdictRejectTCPReset}),
				rule("", &NfProto{}, &Verdict{Kind: VerdictReject}),
				rule("", &Port{Dir: Dst, Proto: ProtoUDP, Ranges: []PortRange{{23, 23}}}, &Verdict{Kind: VerdictReject}),
				rule("reject: the rest", &Verdict{Kind: VerdictReject}),
				rule("a comment, with punctuation: 100% ok", &IfName{Name: "veth-a.1"}, drop),
				rule("ünïcödé", &IfName{In: true, Name: "ppp+0@x:1/2"}, &IfName{Name: "0123456789abcde"}, drop),
			}},
			{Name: "sub", Rules: []*Rule{
				rule("", &L4Proto{Proto: ProtoTCP}, &Verdict{Kind: VerdictReturn}),
				rule("sub end", drop),
			}},
			{Name: "empty_chain"},
			{Name: "output", Hook: HookOutput, Priority: 10, Policy: VerdictAccept, Rules: []*Rule{
				rule("x", &IfName{Name: "lo"}, &Counter{}, accept),
			}},
			{Name: "forward", Hook: HookForward, Priority: -5, Policy: VerdictDrop},
			{Name: "pre", Type: ChainNAT, Hook: HookPrerouting, Policy: VerdictAccept, Rules: []*Rule{
				rule("redirect", &FibLocal{}, &NfProto{}, &Addr{Dir: Src, Set: "kban4"}, &Port{Dir: Dst, Proto: ProtoTCP, Ranges: []PortRange{{22, 22}}},
					&CtMarkSet{Bits: 0x40000000}, &Counter{}, &DNAT{Addr: netip.MustParseAddr("192.0.2.9"), Port: 2222}),
				rule("", &NfProto{V6: true}, &Addr{Dir: Src, V6: true, Set: "ban6"}, &Port{Dir: Dst, Proto: ProtoTCP, Ranges: []PortRange{{22, 22}}},
					&DNAT{Addr: netip.MustParseAddr("2001:db8::9"), Port: 2222}),
				rule("", &Port{Dir: Dst, Proto: ProtoUDP, Ranges: []PortRange{{53, 53}}}, &DNAT{Port: 5353}),
			}},
			{Name: "pre2", Type: ChainNAT, Hook: HookPrerouting, Priority: 10, Policy: VerdictAccept},
		},
	}
}
