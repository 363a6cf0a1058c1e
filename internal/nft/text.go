package nft

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Text renders the table in the syntax `nft -f` reads. The first lines make
// the load replace any previous version of the table atomically, exactly as
// Conn.Replace does over netlink.
func (t *Table) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {}\ndelete table inet %s\n", t.Name, t.Name)
	t.body(&b)
	return b.String()
}

// Body renders only the table definition, without the replace preamble.
func (t *Table) Body() string {
	var b strings.Builder
	t.body(&b)
	return b.String()
}

func (t *Table) body(b *strings.Builder) {
	fmt.Fprintf(b, "table inet %s {\n", t.Name)
	for i, s := range t.Sets {
		if i > 0 {
			b.WriteByte('\n')
		}
		s.text(b)
	}
	for i, c := range t.Chains {
		if i > 0 || len(t.Sets) > 0 {
			b.WriteByte('\n')
		}
		c.text(b)
	}
	b.WriteString("}\n")
}

func (s *Set) text(b *strings.Builder) {
	if s == nil {
		b.WriteString("\t<invalid: nil set>\n")
		return
	}
	fmt.Fprintf(b, "\tset %s {\n\t\ttype %s\n", s.Name, s.Type)
	var flags []string
	if s.Interval {
		flags = append(flags, "interval")
	}
	if s.Dynamic {
		flags = append(flags, "dynamic")
	}
	if s.Timeout > 0 || s.Timeouts {
		flags = append(flags, "timeout")
	}
	if len(flags) > 0 {
		fmt.Fprintf(b, "\t\tflags %s\n", strings.Join(flags, ","))
	}
	if s.Timeout > 0 {
		fmt.Fprintf(b, "\t\ttimeout %s\n", nftDuration(s.Timeout))
	}
	if s.Size > 0 {
		fmt.Fprintf(b, "\t\tsize %d\n", s.Size)
	}
	if s.Comment != "" {
		fmt.Fprintf(b, "\t\tcomment %s\n", quote(s.Comment))
	}
	var elems []string
	for _, p := range s.Prefixes {
		elems = append(elems, prefixText(p))
	}
	for _, r := range s.Ports {
		elems = append(elems, r.String())
	}
	if len(elems) > 0 {
		fmt.Fprintf(b, "\t\telements = { %s }\n", strings.Join(elems, ", "))
	}
	b.WriteString("\t}\n")
}

func (c *Chain) text(b *strings.Builder) {
	if c == nil {
		b.WriteString("\t<invalid: nil chain>\n")
		return
	}
	fmt.Fprintf(b, "\tchain %s {\n", c.Name)
	if c.Hook != HookNone {
		pol := "accept"
		if c.Policy == VerdictDrop {
			pol = "drop"
		}
		fmt.Fprintf(b, "\t\ttype %s hook %s priority %s; policy %s;\n", c.Type, c.Hook, priorityText(c.Type, c.Priority), pol)
	}
	for _, r := range c.Rules {
		b.WriteString("\t\t")
		b.WriteString(r.Text())
		b.WriteByte('\n')
	}
	b.WriteString("\t}\n")
}

// priorityText names a base chain's priority as nft does: relative to
// filter (0), or to dstnat (-100) for nat chains.
func priorityText(t ChainType, p int) string {
	base := "filter"
	if t == ChainNAT {
		base = "dstnat"
	}
	switch {
	case p == 0:
		return base
	case p > 0:
		return base + " + " + strconv.Itoa(p)
	default:
		return base + " - " + strconv.Itoa(-p)
	}
}

// Text renders one rule as a line of nft syntax.
func (r *Rule) Text() string {
	if r == nil {
		return "<invalid: nil rule>"
	}
	parts := make([]string, 0, len(r.Exprs)+1)
	for _, e := range r.Exprs {
		parts = append(parts, exprText(e))
	}
	if r.Comment != "" {
		parts = append(parts, "comment "+quote(r.Comment))
	}
	return strings.Join(parts, " ")
}

// exprText renders one expression. Text does not validate: an expression
// that cannot be rendered comes out as an <invalid ...> token, which nft
// refuses to load (Validate reports the reason).
func exprText(e Expr) string {
	if isNil(e) {
		return "<invalid: nil expression>"
	}
	switch e := e.(type) {
	case *IfName:
		if e.In {
			return "iifname " + quote(e.Name)
		}
		return "oifname " + quote(e.Name)
	case *NfProto:
		if e.V6 {
			return "meta nfproto ipv6"
		}
		return "meta nfproto ipv4"
	case *L4Proto:
		return "meta l4proto " + protoName(e.Proto)
	case *Addr:
		s := "ip "
		if e.V6 {
			s = "ip6 "
		}
		if e.Dir == Src {
			s += "saddr "
		} else {
			s += "daddr "
		}
		if e.Negate {
			s += "!= "
		}
		if e.Set != "" {
			return s + "@" + e.Set
		}
		elems := make([]string, len(e.Prefixes))
		for i, p := range e.Prefixes {
			elems[i] = prefixText(p)
		}
		return s + braces(elems)
	case *Port:
		s := protoName(e.Proto) + " dport "
		if e.Dir == Src {
			s = protoName(e.Proto) + " sport "
		}
		if e.Set != "" {
			return s + "@" + e.Set
		}
		elems := make([]string, len(e.Ranges))
		for i, r := range e.Ranges {
			elems[i] = r.String()
		}
		return s + braces(elems)
	case *CtState:
		// A packet has exactly one state bit. nft (1.0.6 at least) turns
		// "ct state != a,b" into state != (a|b), which is always true, so
		// several excluded states are written as a mask test.
		if e.Negate && e.States&(e.States-1) != 0 {
			return "ct state & (" + strings.ReplaceAll(ctStateText(e.States), ",", "|") + ") == 0"
		}
		s := "ct state "
		if e.Negate {
			s += "!= "
		}
		return s + ctStateText(e.States)
	case *TCPFlags:
		op := " == "
		if e.Negate {
			op = " != "
		}
		val := tcpFlagsText(e.Value)
		if e.Value == 0 {
			val = "0x0"
		}
		return "tcp flags & (" + tcpFlagsText(e.Mask) + ")" + op + val
	case *ICMPType:
		s := "icmp type "
		names := icmpNames
		if e.V6 {
			s = "icmpv6 type "
			names = icmpv6Names
		}
		elems := make([]string, len(e.Types))
		for i, t := range e.Types {
			if n, ok := names[t]; ok {
				elems[i] = n
			} else {
				elems[i] = strconv.Itoa(int(t))
			}
		}
		return s + braces(elems)
	case *Limit:
		s := "limit rate "
		if e.Over {
			s += "over "
		}
		s += fmt.Sprintf("%d/%s", e.Rate, unitName(e.Unit))
		if e.Burst > 0 {
			s += fmt.Sprintf(" burst %d packets", e.Burst)
		}
		return s
	case *Meter:
		op := "update"
		if _, ok := e.Stmt.(*CtCount); ok {
			op = "add"
		}
		key := "ip saddr"
		full := 32
		if e.V6 {
			key = "ip6 saddr"
			full = 128
		}
		if e.PrefixLen > 0 && e.PrefixLen < full {
			key += " and " + maskText(e.V6, e.PrefixLen)
		}
		return fmt.Sprintf("%s @%s { %s %s }", op, e.Set, key, exprText(e.Stmt))
	case *SetAdd:
		key := "ip saddr"
		if e.V6 {
			key = "ip6 saddr"
		}
		if e.Timeout > 0 {
			key += " timeout " + nftDuration(e.Timeout)
		}
		return fmt.Sprintf("add @%s { %s }", e.Set, key)
	case *CtCount:
		if e.Over {
			return fmt.Sprintf("ct count over %d", e.N)
		}
		return fmt.Sprintf("ct count %d", e.N)
	case *Counter:
		return "counter"
	case *CtMark:
		return fmt.Sprintf("ct mark & %#08x == %#08x", e.Mask, e.Value)
	case *CtMarkSet:
		return fmt.Sprintf("ct mark set ct mark | %#08x", e.Bits)
	case *CtStatus:
		return fmt.Sprintf("ct status & %#08x == %#08x", e.Bits, e.Bits)
	case *FibLocal:
		return "fib daddr type local"
	case *RPFilter:
		if e.Strict {
			return "fib saddr . iif oif missing"
		}
		return "fib saddr oif missing"
	case *DNAT:
		switch {
		case !e.Addr.IsValid():
			return fmt.Sprintf("redirect to :%d", e.Port)
		case e.Addr.Is4():
			return fmt.Sprintf("dnat ip to %s:%d", e.Addr, e.Port)
		}
		return fmt.Sprintf("dnat ip6 to [%s]:%d", e.Addr, e.Port)
	case *Log:
		s := "log"
		if e.Prefix != "" {
			s += " prefix " + quote(e.Prefix)
		}
		if e.Group != nil {
			return s + fmt.Sprintf(" group %d", *e.Group)
		}
		if e.Level != "" {
			s += " level " + e.Level
		}
		return s
	case *Verdict:
		switch e.Kind {
		case VerdictAccept:
			return "accept"
		case VerdictDrop:
			return "drop"
		case VerdictReject:
			// Spelled out: a bare reject after a family match becomes
			// icmp or icmpv6 port-unreachable, not icmpx.
			return "reject with icmpx port-unreachable"
		case VerdictRejectTCPReset:
			return "reject with tcp reset"
		case VerdictJump:
			return "jump " + e.Chain
		case VerdictReturn:
			return "return"
		}
	}
	return fmt.Sprintf("<invalid: %T>", e)
}

func braces(elems []string) string {
	if len(elems) == 1 {
		return elems[0]
	}
	return "{ " + strings.Join(elems, ", ") + " }"
}

func (r PortRange) String() string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return strconv.Itoa(int(r.First)) + "-" + strconv.Itoa(int(r.Last))
}

func prefixText(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.Masked().String()
}

func maskText(v6 bool, bits int) string {
	n := 4
	if v6 {
		n = 16
	}
	b := make([]byte, n)
	for i := range bits {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a.String()
}

// quote renders s as an nft string. nft strings cannot hold a double quote
// or a newline, so those are replaced; callers validate before this.
func quote(s string) string {
	r := strings.NewReplacer(`"`, "'", "\n", " ", "\r", " ", `\`, "/")
	return `"` + r.Replace(s) + `"`
}

func protoName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoICMP:
		return "icmp"
	case ProtoICMPv6:
		return "icmpv6" // a keyword; "ipv6-icmp" needs /etc/protocols
	}
	return strconv.Itoa(int(p))
}

func unitName(d time.Duration) string {
	switch d {
	case time.Second:
		return "second"
	case time.Minute:
		return "minute"
	case time.Hour:
		return "hour"
	case 24 * time.Hour:
		return "day"
	case 7 * 24 * time.Hour:
		return "week"
	}
	return fmt.Sprintf("<invalid unit %v>", d)
}

func nftDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

var ctStateNames = []struct {
	bit  uint32
	name string
}{{CtInvalid, "invalid"}, {CtEstablished, "established"}, {CtRelated, "related"}, {CtNew, "new"}, {CtUntracked, "untracked"}}

func ctStateText(s uint32) string {
	var names []string
	for _, n := range ctStateNames {
		if s&n.bit != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ",")
}

var tcpFlagNames = []struct {
	bit  uint8
	name string
}{{TCPFin, "fin"}, {TCPSyn, "syn"}, {TCPRst, "rst"}, {TCPPsh, "psh"}, {TCPAck, "ack"}, {TCPUrg, "urg"}, {TCPEce, "ecn"}, {TCPCwr, "cwr"}}

func tcpFlagsText(f uint8) string {
	var names []string
	for _, n := range tcpFlagNames {
		if f&n.bit != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, "|")
}

var icmpNames = map[uint8]string{
	0: "echo-reply", 3: "destination-unreachable", 5: "redirect", 8: "echo-request",
	9: "router-advertisement", 10: "router-solicitation", 11: "time-exceeded", 12: "parameter-problem",
	13: "timestamp-request", 14: "timestamp-reply",
}

var icmpv6Names = map[uint8]string{
	1: "destination-unreachable", 2: "packet-too-big", 3: "time-exceeded", 4: "parameter-problem",
	128: "echo-request", 129: "echo-reply", 130: "mld-listener-query", 131: "mld-listener-report",
	132: "mld-listener-done", 133: "nd-router-solicit", 134: "nd-router-advert", 135: "nd-neighbor-solicit",
	136: "nd-neighbor-advert", 137: "nd-redirect", 143: "mld2-listener-report",
}
