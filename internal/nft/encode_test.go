package nft

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

func TestValidateRefuses(t *testing.T) {
	valid := func() *Table { return smallTable("moat") }
	g := uint16(1)
	for _, tc := range []struct {
		name   string
		change func(*Table)
	}{
		{"bad table name", func(t *Table) { t.Name = "a b" }},
		{"long table name", func(t *Table) { t.Name = strings.Repeat("a", 256) }},
		{"duplicate chain", func(t *Table) { t.Chains = append(t.Chains, &Chain{Name: "j"}) }},
		{"duplicate set", func(t *Table) { t.Sets = append(t.Sets, &Set{Name: "ban"}) }},
		{"bad hook", func(t *Table) { t.Chains[0].Hook = 7 }},
		{"bad policy", func(t *Table) { t.Chains[0].Policy = VerdictReject }},
		{"priority overflow", func(t *Table) { t.Chains[0].Priority = 1 << 40 }},
		{"set key type", func(t *Table) { t.Sets[0].Type = 9 }},
		{"v6 in v4 set", func(t *Table) { t.Sets[0].Prefixes = pfx("::1/128") }},
		{"prefix without interval", func(t *Table) { t.Sets[0].Prefixes = pfx("10.0.0.0/8") }},
		{"ports in address set", func(t *Table) { t.Sets[0].Ports = []PortRange{{1, 1}} }},
		{"overlapping intervals", func(t *Table) {
			t.Sets[0].Interval = true
			t.Sets[0].Prefixes = pfx("10.0.0.0/8", "10.1.0.0/16")
		}},
		{"sub-millisecond timeout", func(t *Table) { t.Sets[0].Timeout = time.Microsecond }},
		{"set comment with quote", func(t *Table) { t.Sets[0].Comment = `say "hi"` }},
		{"rule comment too long", func(t *Table) { t.Chains[0].Rules[0].Comment = strings.Repeat("x", 129) }},
		{"rule comment newline", func(t *Table) { t.Chains[0].Rules[0].Comment = "a\nb" }},
		{"empty rule", func(t *Table) { t.Chains[0].Rules[0].Exprs = nil }},
		{"nil rule", func(t *Table) { t.Chains[0].Rules[0] = nil }},
		{"nil expression", func(t *Table) { t.Chains[0].Rules[0].Exprs[0] = nil }},
		{"typed nil expression", func(t *Table) { t.Chains[0].Rules[0].Exprs[0] = (*Addr)(nil) }},
		{"verdict not last", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{drop, &Counter{}} }},
		{"dnat in a filter chain", func(t *Table) {
			t.Chains[0].Rules[0].Exprs = []Expr{&Port{Dir: Dst, Proto: ProtoTCP, Ranges: []PortRange{{22, 22}}}, &DNAT{Port: 2222}}
		}},
		{"nat chain at input", func(t *Table) { t.Chains[0].Type = ChainNAT }},
		{"filter chain at prerouting", func(t *Table) { t.Chains[0].Hook = HookPrerouting }},
		{"dnat without a protocol", func(t *Table) {
			t.Chains = append(t.Chains, natChain(&NfProto{}, &DNAT{Addr: netip.MustParseAddr("192.0.2.1"), Port: 1}))
		}},
		{"dnat without a port", func(t *Table) {
			t.Chains = append(t.Chains, natChain(&Port{Dir: Dst, Proto: ProtoTCP, Ranges: []PortRange{{22, 22}}}, &DNAT{}))
		}},
		{"dnat without a family", func(t *Table) {
			t.Chains = append(t.Chains, natChain(&Port{Dir: Dst, Proto: ProtoTCP, Ranges: []PortRange{{22, 22}}}, &DNAT{Addr: netip.MustParseAddr("192.0.2.1"), Port: 1}))
		}},
		{"dnat to the other family", func(t *Table) {
			t.Chains = append(t.Chains, natChain(&NfProto{V6: true}, &Port{Dir: Dst, Proto: ProtoTCP, Ranges: []PortRange{{22, 22}}}, &DNAT{Addr: netip.MustParseAddr("192.0.2.1"), Port: 1}))
		}},
		{"ct mark value outside mask", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&CtMark{Mask: 1, Value: 2}, drop} }},
		{"ct mark set nothing", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&CtMarkSet{}, drop} }},
		{"jump to missing chain", func(t *Table) { t.Chains[0].Rules[1].Exprs = []Expr{&Verdict{Kind: VerdictJump, Chain: "x"}} }},
		{"jump to base chain", func(t *Table) { t.Chains[0].Rules[1].Exprs = []Expr{&Verdict{Kind: VerdictJump, Chain: "in"}} }},
		{"chain on accept", func(t *Table) { t.Chains[0].Rules[1].Exprs = []Expr{&Verdict{Kind: VerdictAccept, Chain: "j"}} }},
		{"unknown verdict", func(t *Table) { t.Chains[0].Rules[1].Exprs = []Expr{&Verdict{Kind: 42}} }},
		{"empty ifname", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&IfName{}} }},
		{"long ifname", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&IfName{Name: "abcdefghijklmnop"}} }},
		{"wildcard ifname", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&IfName{Name: "eth*"}} }},
		{"addr without values", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&Addr{}} }},
		{"addr with both", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&Addr{Set: "ban", Prefixes: pfx("10.0.0.1/32")}} }},
		{"addr family", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&Addr{V6: true, Prefixes: pfx("10.0.0.1/32")}} }},
		{"addr set family", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&Addr{V6: true, Set: "ban"}} }},
		{"addr missing set", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&Addr{Set: "nope"}} }},
		{"addr invalid prefix", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&Addr{Prefixes: make(pfxs, 1)}} }},
		{"addr bad dir", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&Addr{Dir: 3, Prefixes: pfx("10.0.0.1/32")}} }},
		{"conflicting families", func(t *Table) {
			t.Chains[0].Rules[0].Exprs = []Expr{&NfProto{V6: true}, &Addr{Prefixes: pfx("10.0.0.1/32")}}
		}},
		{"conflicting nfproto", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&NfProto{}, &NfProto{V6: true}} }},
		{"port proto", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&Port{Proto: 132, Ranges: []PortRange{{1, 1}}}} }},
		{"port inverted", func(t *Table) {
			t.Chains[0].Rules[0].Exprs = []Expr{&Port{Proto: ProtoTCP, Ranges: []PortRange{{2, 1}}}}
		}},
		{"port set type", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&Port{Proto: ProtoTCP, Set: "ban"}} }},
		{"conflicting protocols", func(t *Table) {
			t.Chains[0].Rules[0].Exprs = []Expr{&L4Proto{Proto: ProtoUDP}, &Port{Proto: ProtoTCP, Ranges: []PortRange{{1, 1}}}}
		}},
		{"tcp flags after udp", func(t *Table) {
			t.Chains[0].Rules[0].Exprs = []Expr{&Port{Proto: ProtoUDP, Ranges: []PortRange{{1, 1}}}, &TCPFlags{Mask: TCPSyn}}
		}},
		{"tcp flags value outside mask", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&TCPFlags{Mask: TCPSyn, Value: TCPAck}} }},
		{"tcp flags no mask", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&TCPFlags{}} }},
		{"ct state empty", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&CtState{}} }},
		{"ct state unknown bit", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&CtState{States: 16}} }},
		{"icmp without types", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&ICMPType{}} }},
		{"icmp after tcp", func(t *Table) {
			t.Chains[0].Rules[0].Exprs = []Expr{&L4Proto{Proto: ProtoTCP}, &ICMPType{Types: []uint8{8}}}
		}},
		{"icmp in ipv6", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&NfProto{V6: true}, &ICMPType{Types: []uint8{8}}} }},
		{"limit rate 0", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&Limit{Unit: time.Second}} }},
		{"limit unit", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&Limit{Rate: 1, Unit: 2 * time.Second}} }},
		{"ct count alone", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&CtCount{N: 1}} }},
		{"meter without statement", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&Meter{Set: "dyn"}} }},
		{"meter with counter", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&Meter{Set: "dyn", Stmt: &Counter{}}} }},
		{"meter set not dynamic", func(t *Table) {
			t.Chains[0].Rules[0].Exprs = []Expr{&Meter{Set: "ban", Stmt: &CtCount{N: 1}}}
		}},
		{"meter prefix", func(t *Table) {
			t.Chains[0].Rules[0].Exprs = []Expr{&Meter{Set: "dyn", PrefixLen: 33, Stmt: &CtCount{N: 1}}}
		}},
		{"log level", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&Log{Level: "loud"}} }},
		{"log prefix too long", func(t *Table) { t.Chains[0].Rules[0].Exprs = []Expr{&Log{Prefix: strings.Repeat("p", 128), Group: &g}} }},
		{"tcp reset after udp", func(t *Table) {
			t.Chains[0].Rules[0].Exprs = []Expr{&L4Proto{Proto: ProtoUDP}, &Verdict{Kind: VerdictRejectTCPReset}}
		}},
	} {
		tbl := valid()
		tbl.Sets = append(tbl.Sets, &Set{Name: "dyn", Type: KeyIPv4, Dynamic: true})
		if err := tbl.Validate(); err != nil {
			t.Fatalf("base table: %v", err)
		}
		tc.change(tbl)
		err := tbl.Validate()
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate() = %v, want ErrInvalid", tc.name, err)
			continue
		}
		t.Logf("%s: %v", tc.name, err)
		_ = tbl.Text() // must not panic either
	}
	if err := (*Table)(nil).Validate(); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil table: %v", err)
	}
}

type pfxs = []netip.Prefix

// exprString renders library expressions compactly for comparison.
func exprString(xs []expr.Any) string {
	var b strings.Builder
	for _, x := range xs {
		switch x := x.(type) {
		case *expr.Meta:
			fmt.Fprintf(&b, "meta %d; ", x.Key)
		case *expr.Cmp:
			fmt.Fprintf(&b, "cmp %d %x; ", x.Op, x.Data)
		case *expr.Payload:
			fmt.Fprintf(&b, "payload %d+%d/%d; ", x.Base, x.Offset, x.Len)
		case *expr.Bitwise:
			fmt.Fprintf(&b, "bitwise %x; ", x.Mask)
		case *expr.Lookup:
			fmt.Fprintf(&b, "lookup %s id %d inv %v; ", x.SetName, x.SetID, x.Invert)
		default:
			fmt.Fprintf(&b, "%T; ", x)
		}
	}
	return strings.TrimSuffix(b.String(), "; ")
}

func TestEncodeDependencies(t *testing.T) {
	const (
		nfproto = "meta 15; cmp 0 "
		l4proto = "meta 16; cmp 0 "
	)
	for _, tc := range []struct {
		name  string
		exprs []Expr
		want  string
	}{
		{"family added once", []Expr{&Addr{Prefixes: pfx("10.0.0.1/32")}, &Addr{Dir: Dst, Prefixes: pfx("10.0.0.0/8")}},
			nfproto + "02; payload 1+12/4; cmp 0 0a000001; payload 1+16/1; cmp 0 0a"},
		{"explicit family kept", []Expr{&NfProto{V6: true}, &Addr{V6: true, Prefixes: pfx("::/0")}},
			nfproto + "0a; payload 1+8/16; bitwise 00000000000000000000000000000000; cmp 0 00000000000000000000000000000000"},
		{"protocol added once", []Expr{&Port{Proto: ProtoTCP, Ranges: []PortRange{{1, 2}}}, &TCPFlags{Mask: TCPSyn, Value: TCPSyn, Negate: true}},
			l4proto + "06; payload 2+0/2; cmp 5 0001; cmp 3 0002; payload 2+13/1; bitwise 02; cmp 1 02"},
		{"icmp brings family and protocol", []Expr{&ICMPType{V6: true, Types: []uint8{128}}},
			nfproto + "0a; " + l4proto + "3a; payload 2+0/1; cmp 0 80"},
		{"icmp after l4proto icmp", []Expr{&L4Proto{Proto: ProtoICMP}, &ICMPType{Types: []uint8{8}}},
			l4proto + "01; payload 2+0/1; cmp 0 08"},
		{"tcp reset puts tcp first", []Expr{&IfName{Name: "lo"}, &Counter{}, &Verdict{Kind: VerdictRejectTCPReset}},
			l4proto + "06; meta 7; cmp 0 6c6f0000000000000000000000000000; *expr.Counter; *expr.Reject"},
		{"ct state", []Expr{&CtState{States: CtNew, Negate: true}, &CtState{States: CtNew | CtInvalid, Negate: true}},
			"*expr.Ct; cmp 1 08000000; *expr.Ct; bitwise 09000000; cmp 0 00000000"},
		{"anonymous sets", []Expr{&Addr{Prefixes: pfx("10.0.0.1/32", "10.0.0.2/32"), Negate: true}, &Port{Proto: ProtoUDP, Ranges: []PortRange{{1, 1}, {3, 4}}}},
			nfproto + "02; payload 1+12/4; lookup __set%d id 2 inv true; " + l4proto + "11; payload 2+0/2; lookup __set%d id 3 inv false"},
	} {
		tbl := smallTable("t")
		tbl.Chains[1].Rules = []*Rule{{Exprs: tc.exprs}}
		enc, err := encode(tbl)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := exprString(enc.rules[2].rule.Exprs); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func elemString(es []nftables.SetElement) string {
	var parts []string
	for _, e := range es {
		s := fmt.Sprintf("%x", e.Key)
		if e.IntervalEnd {
			s += " end"
		}
		if e.IntervalOpen {
			s += " open"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func TestEncodeIntervals(t *testing.T) {
	enc, err := encode(allTable())
	if err != nil {
		t.Fatal(err)
	}
	sets := map[string]string{}
	for _, s := range enc.sets {
		sets[s.set.Name] = elemString(s.elems)
	}
	for name, want := range map[string]string{
		// Sorted, duplicates dropped, adjacent ranges kept apart, the range
		// up to the last address open.
		"ban4":  "00000000 end, c0000201, c0000202 end, c6336400, c6336500 end, cb007100, cb007180 end, cb007180, cb007200 end, ffffff00 open",
		"ban6":  "20010db8000000000000000000000003, 20010db8000000000000000000000001, 20010db8000000000000000000000002",
		"ports": "0000 end, 0016, 0017 end, 1f40, 1f91 end, fde8 open",
		"svc":   "01bb, 0050",
		"nets6": "00000000000000000000000000000000, 01000000000000000000000000000000 end, 20010db8000000000000000000000000, 20010db9000000000000000000000000 end, ff000000000000000000000000000000 open",
		"empty": "",
	} {
		if sets[name] != want {
			t.Errorf("set %s:\n got %s\nwant %s", name, sets[name], want)
		}
	}
	var anon []string
	for _, r := range enc.rules {
		for _, s := range r.anon {
			anon = append(anon, fmt.Sprintf("%v %s", s.set.Interval, elemString(s.elems)))
		}
	}
	for _, want := range []string{
		"true 00000000 end, 0a000000, 0b000000 end, c0a80101, c0a80102 end", // { 10.0.0.0/8, 192.168.1.1 }
		"false c0000201, c0000202",                  // duplicates dropped
		"true 00000000 end, 0a000000, 0a000100 end", // merged to 10.0.0.0/24
		"true 0000 end, 0016, 0019 end, ffff open",  // { 65535, 22-23, 24 }
		"true 0000, 000b end, 0014, 0015 end",       // starts at zero
		"false 80, 87",                              // icmpv6 types
	} {
		found := false
		for _, a := range anon {
			found = found || a == want
		}
		if !found {
			t.Errorf("no anonymous set %q among:\n%s", want, strings.Join(anon, "\n"))
		}
	}
	ids := map[uint32]bool{}
	for _, s := range enc.sets {
		ids[s.set.ID] = true
	}
	for _, r := range enc.rules {
		for _, s := range r.anon {
			ids[s.set.ID] = true
		}
	}
	if want := len(enc.sets) + len(anon); len(ids) != want {
		t.Errorf("%d distinct set IDs for %d sets", len(ids), want)
	}
}

// TestReplaceBatch records what Replace sends: one batch that recreates the
// table, then sets, chains and rules.
func TestReplaceBatch(t *testing.T) {
	var sends [][]netlink.Message
	nc, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if len(req) > 0 { // a receive calls with no request
			sends = append(sends, req)
		}
		return nil, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	c := &Conn{nc: nc}
	if err := c.Replace(smallTable("moat")); err != nil {
		t.Fatal(err)
	}
	if len(sends) != 1 {
		t.Fatalf("Replace sent %d times, want one batch", len(sends))
	}
	var got []string
	for _, m := range sends[0] {
		typ := int(m.Header.Type)
		switch {
		case typ == unix.NFNL_MSG_BATCH_BEGIN:
			got = append(got, "begin")
		case typ == unix.NFNL_MSG_BATCH_END:
			got = append(got, "end")
		default:
			got = append(got, map[int]string{
				unix.NFT_MSG_NEWTABLE: "newtable", unix.NFT_MSG_DELTABLE: "deltable", unix.NFT_MSG_NEWSET: "newset",
				unix.NFT_MSG_NEWSETELEM: "newsetelem", unix.NFT_MSG_NEWCHAIN: "newchain", unix.NFT_MSG_NEWRULE: "newrule",
			}[typ&0xff])
		}
	}
	want := []string{"begin", "newtable", "deltable", "newtable", "newset", "newsetelem", "newchain", "newchain", "newrule", "newrule", "newrule", "end"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("batch (-want +got):\n%s", diff)
	}

	sends = nil
	bad := smallTable("moat")
	bad.Chains[0].Rules[0].Exprs = nil
	if err := c.Replace(bad); !errors.Is(err, ErrInvalid) || len(sends) != 0 {
		t.Errorf("invalid table: err %v, %d sends; want ErrInvalid and nothing sent", err, len(sends))
	}
}

func TestRuleComment(t *testing.T) {
	for _, tc := range []struct {
		ud   []byte
		want string
	}{
		{nil, ""},
		{[]byte{0, 2, 'x', 0}, "x"},
		{[]byte{1, 1, 9, 0, 3, 'a', 'b', 0}, "ab"}, // another record first
		{[]byte{0, 9, 'x'}, ""},                    // truncated
		{[]byte{0}, ""},
	} {
		if got := ruleComment(tc.ud); got != tc.want {
			t.Errorf("ruleComment(%q) = %q, want %q", tc.ud, got, tc.want)
		}
	}
}

// FuzzTable checks that no decoded table makes Validate, Text or
// MarshalJSON panic.
func FuzzTable(f *testing.F) {
	for _, tbl := range []*Table{allTable(), smallTable("t")} {
		data, err := json.Marshal(tbl)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var tbl Table
		if json.Unmarshal(data, &tbl) != nil {
			return
		}
		_ = tbl.Validate()
		_ = tbl.Text()
		_, _ = json.Marshal(&tbl)
	})
}

var sink *encoded

// BenchmarkEncode measures turning a 10,000-rule table into netlink
// messages, without a kernel: the model step alone, then with the library's
// marshalling of the batch.
func BenchmarkEncode(b *testing.B) {
	tbl := bigTable(10000, 1000)
	b.Run("model", func(b *testing.B) {
		for b.Loop() {
			enc, err := encode(tbl)
			if err != nil {
				b.Fatal(err)
			}
			sink = enc
		}
	})
	b.Run("netlink", func(b *testing.B) {
		nc, err := nftables.New(nftables.WithTestDial(func([]netlink.Message) ([]netlink.Message, error) { return nil, nil }))
		if err != nil {
			b.Fatal(err)
		}
		c := &Conn{nc: nc}
		for b.Loop() {
			if err := c.Replace(tbl); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func natChain(exprs ...Expr) *Chain {
	return &Chain{Name: "nat_pre", Type: ChainNAT, Hook: HookPrerouting, Rules: []*Rule{{Exprs: exprs}}}
}
