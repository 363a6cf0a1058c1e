package nft

import (
	"net/netip"
	"time"
)

// Table is one nftables table of family inet, with everything in it. moat owns
// exactly one (named "moat" unless configured otherwise) and never touches any
// other table.
type Table struct {
	Name   string
	Sets   []*Set
	Chains []*Chain
}

// KeyType is the type of a named set's key.
type KeyType int

const (
	KeyIPv4 KeyType = iota // ipv4_addr
	KeyIPv6                // ipv6_addr
	KeyPort                // inet_service
)

func (k KeyType) String() string {
	switch k {
	case KeyIPv4:
		return "ipv4_addr"
	case KeyIPv6:
		return "ipv6_addr"
	case KeyPort:
		return "inet_service"
	}
	return "invalid"
}

// Set is a named set. Address sets hold Prefixes (a /32 or /128 is a single
// address); port sets hold Ports. Dynamic sets are filled by the packet path
// (meters) and start empty.
type Set struct {
	Name     string
	Type     KeyType
	Interval bool          // flags interval: prefixes and ranges
	Dynamic  bool          // flags dynamic: written by the packet path
	Timeout  time.Duration // non-zero: flags timeout with this default timeout
	Timeouts bool          // flags timeout without a default: elements carry their own
	Size     uint32        // maximum number of elements; 0 means the kernel default
	Prefixes []netip.Prefix
	Ports    []PortRange
	Comment  string
	// Keep makes the set's elements survive Conn.Replace: when the table
	// already has a set of this name and the same shape, the set is left
	// in place (with its elements and their timeouts) while everything
	// else is rebuilt. Ban sets are kept, so a policy reload never lifts
	// a ban.
	Keep bool
}

// Hook is where a base chain is attached; HookNone makes a regular chain that
// is reached only by jump.
type Hook int

const (
	HookNone Hook = iota
	HookInput
	HookOutput
	HookForward
	HookPrerouting // nat chains only: where dnat and redirect happen
)

func (h Hook) String() string {
	switch h {
	case HookInput:
		return "input"
	case HookOutput:
		return "output"
	case HookForward:
		return "forward"
	case HookPrerouting:
		return "prerouting"
	}
	return ""
}

// ChainType is what a base chain may do: filter (the default) or nat, which
// sees only the first packet of each connection and may rewrite its
// destination.
type ChainType int

const (
	ChainFilter ChainType = iota
	ChainNAT
)

func (t ChainType) String() string {
	if t == ChainNAT {
		return "nat"
	}
	return "filter"
}

// Chain is a chain of rules. Base chains (Hook != HookNone) are chains of
// Type at Priority, relative to the type's standard priority ("filter", 0,
// or "dstnat", -100, as nft names them), with Policy as the verdict for
// packets that fall off the end.
type Chain struct {
	Name     string
	Type     ChainType
	Hook     Hook
	Priority int
	Policy   VerdictKind // VerdictAccept or VerdictDrop; base chains only
	Rules    []*Rule
}

// Rule is an ordered list of expressions, evaluated left to right as nft does.
// Comment is stored as the rule's user data and shows in `nft list ruleset`;
// moat uses it to map kernel rules (and their counters) back to policy rules.
type Rule struct {
	Exprs   []Expr
	Comment string
}

// PortRange is an inclusive range of ports; a single port has First == Last.
type PortRange struct{ First, Last uint16 }

// Expr is one match or statement of a rule. The set of implementations is
// closed: each renders itself as nft text and encodes itself as netlink
// expressions.
type Expr interface {
	isExpr()
}

// Dir says which side of a packet an expression looks at.
type Dir int

const (
	Src Dir = iota
	Dst
)

// IfName matches the input (In) or output interface name: iifname/oifname.
type IfName struct {
	In   bool
	Name string
}

// NfProto matches the layer-3 family: meta nfproto ipv4|ipv6.
type NfProto struct{ V6 bool }

// L4Proto matches the layer-4 protocol number: meta l4proto N.
type L4Proto struct{ Proto uint8 }

// Addr matches the source or destination address of one family against
// literal prefixes or a named set (Set, without the @). Exactly one of
// Prefixes and Set is used. The family match (meta nfproto) is implied when
// the rule has none before it, as in nft.
type Addr struct {
	Dir      Dir
	V6       bool
	Prefixes []netip.Prefix
	Set      string
	Negate   bool
}

// Port matches a TCP or UDP port against literal ranges or a named set.
// The l4proto match is implied (nft adds it; the encoder emits it).
type Port struct {
	Dir    Dir
	Proto  uint8 // ProtoTCP or ProtoUDP
	Ranges []PortRange
	Set    string
}

// CtState matches conntrack states (a bitmask of CtEstablished...).
type CtState struct {
	States uint32
	Negate bool
}

// TCPFlags matches tcp flags & Mask == Value (or != with Negate). The tcp
// l4proto match is implied.
type TCPFlags struct {
	Mask, Value uint8
	Negate      bool
}

// ICMPType matches icmp or icmpv6 types. The l4proto match is implied.
type ICMPType struct {
	V6    bool
	Types []uint8
}

// Limit is a global token bucket: limit rate [over] Rate/Unit burst Burst packets.
type Limit struct {
	Rate  uint64
	Unit  time.Duration // time.Second, time.Minute, time.Hour or 24*time.Hour
	Burst uint32
	Over  bool
}

// Meter keeps per-source state in a dynamic set: update @Set { KEY STMT },
// where KEY is the source address of family V6, masked to PrefixLen bits
// (0 or full length means unmasked), and STMT is a Limit or a CtCount.
// The nfproto match is implied when the rule has none before it.
type Meter struct {
	Set       string
	V6        bool
	PrefixLen int
	Stmt      Expr // *Limit or *CtCount
}

// CtCount counts a source's conntrack entries: ct count [over] N. Only valid
// inside a Meter.
type CtCount struct {
	N    uint32
	Over bool
}

// SetAdd adds the packet's source address (family V6) to a named set, with
// its own Timeout if non-zero: add @Set { ip saddr [timeout T] }. It is
// how the kernel itself bans (a completed handshake on a trap port) or
// blocks (a source over the probe meter) without waiting for the daemon.
// The nfproto match must precede it in the rule.
type SetAdd struct {
	Set     string
	V6      bool
	Timeout time.Duration
}

// CtMark matches bits of the connection's mark: ct mark & Mask == Value.
type CtMark struct{ Mask, Value uint32 }

// CtMarkSet sets Bits in the connection's mark and keeps the others, so
// that marks other tools use survive: ct mark set ct mark | Bits.
type CtMarkSet struct{ Bits uint32 }

// CtStatus matches connections that have every bit of Bits in their
// conntrack status (CtStatusDNAT...): ct status & Bits == Bits.
type CtStatus struct{ Bits uint32 }

// Conntrack status bits, as the kernel defines them.
const (
	CtStatusSNAT uint32 = 1 << 4
	CtStatusDNAT uint32 = 1 << 5
)

// FibLocal matches packets addressed to one of this host's own addresses:
// fib daddr type local.
type FibLocal struct{}

// RPFilter matches packets whose source address has no route back:
// through the interface the packet came in on (Strict), or through any
// interface: fib saddr [. iif] oif missing. Only valid on the input,
// forward and prerouting hooks.
type RPFilter struct{ Strict bool }

// DNAT rewrites the destination of a connection's first packet, in a nat
// chain: to Addr:Port (dnat ip|ip6 to ...), or, when Addr is the zero
// Addr, to Port on the address the packet was sent to (redirect to :Port).
// The rule must match the family of Addr and the protocol (a Port match)
// before it.
type DNAT struct {
	Addr netip.Addr
	Port uint16
}

// Counter counts packets and bytes that reach it.
type Counter struct{}

// Log logs the packet with Prefix: to the kernel log at Level when Group is
// nil, or to NFLOG group *Group otherwise.
type Log struct {
	Prefix string
	Level  string // "emerg".."debug"; default "warn" in the kernel, we use "info"
	Group  *uint16
}

// VerdictKind is a terminal decision.
type VerdictKind int

const (
	VerdictAccept VerdictKind = iota
	VerdictDrop
	VerdictReject // reject with icmpx port-unreachable
	VerdictRejectTCPReset
	VerdictJump
	VerdictReturn
)

// Verdict ends a rule. Chain is the jump target for VerdictJump.
type Verdict struct {
	Kind  VerdictKind
	Chain string
}

// Protocol numbers used by moat.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// Conntrack state bits, as the kernel defines them.
const (
	CtInvalid     uint32 = 1
	CtEstablished uint32 = 2
	CtRelated     uint32 = 4
	CtNew         uint32 = 8
	CtUntracked   uint32 = 64
)

// TCP flag bits.
const (
	TCPFin uint8 = 0x01
	TCPSyn uint8 = 0x02
	TCPRst uint8 = 0x04
	TCPPsh uint8 = 0x08
	TCPAck uint8 = 0x10
	TCPUrg uint8 = 0x20
	TCPEce uint8 = 0x40
	TCPCwr uint8 = 0x80
)

func (*IfName) isExpr()    {}
func (*NfProto) isExpr()   {}
func (*L4Proto) isExpr()   {}
func (*Addr) isExpr()      {}
func (*Port) isExpr()      {}
func (*CtState) isExpr()   {}
func (*TCPFlags) isExpr()  {}
func (*ICMPType) isExpr()  {}
func (*Limit) isExpr()     {}
func (*Meter) isExpr()     {}
func (*CtCount) isExpr()   {}
func (*Counter) isExpr()   {}
func (*CtMark) isExpr()    {}
func (*CtMarkSet) isExpr() {}
func (*CtStatus) isExpr()  {}
func (*FibLocal) isExpr()  {}
func (*RPFilter) isExpr()  {}
func (*DNAT) isExpr()      {}
func (*SetAdd) isExpr()    {}
func (*Log) isExpr()       {}
func (*Verdict) isExpr()   {}
