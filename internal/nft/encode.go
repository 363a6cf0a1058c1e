package nft

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// ErrInvalid is wrapped by every error about a table that cannot be applied
// as given: a bad name, a match without values, a statement out of place.
// Such a table is refused before anything is sent to the kernel.
var ErrInvalid = errors.New("invalid ruleset")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Validate reports whether the table can be applied, without touching the
// kernel: the checks are those Conn.Replace makes before sending anything.
// Text does not validate; render only tables that pass.
func (t *Table) Validate() error {
	_, err := encode(t)
	return err
}

// Limits the kernel and nft put on names and strings.
const (
	maxNameLen      = 255 // NFT_NAME_MAXLEN minus the NUL
	maxIfNameLen    = 15  // IFNAMSIZ minus the NUL
	maxCommentLen   = 128 // nft refuses longer comments (NFTNL_UDATA_COMMENT_MAXLEN)
	maxLogPrefixLen = 127 // NF_LOG_PREFIXLEN minus the NUL
	defaultBurst    = 5   // nft's burst for "limit rate N/unit" without "burst"
)

// reg is the register every match loads into. nft uses NFT_REG_1, the first
// 16-byte data register, for everything it generates, and so do we so that
// the kernel's listing of our rules is the same as of nft's.
const reg = unix.NFT_REG_1

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

func checkName(kind, name string) error {
	if len(name) > maxNameLen || !nameRE.MatchString(name) {
		return invalidf("%s name %q: want a letter or _ then letters, digits, _ . -, at most %d bytes", kind, name, maxNameLen)
	}
	return nil
}

// checkString accepts strings that nft can read back inside double quotes
// exactly as given: nft strings have no escapes, so a quote, a backslash or
// a control character cannot round-trip.
func checkString(kind, s string, maxLen int) error {
	if len(s) > maxLen {
		return invalidf("%s %q: longer than %d bytes", kind, s, maxLen)
	}
	if !utf8.ValidString(s) || strings.ContainsAny(s, "\"\\") || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return invalidf("%s %q: quotes, backslashes and control characters are not allowed", kind, s)
	}
	return nil
}

func checkIfName(name string) error {
	bad := len(name) == 0 || len(name) > maxIfNameLen ||
		strings.ContainsFunc(name, func(r rune) bool { return r <= 0x20 || r >= 0x7f || r == '"' || r == '\\' }) ||
		strings.HasSuffix(name, "*") // nft reads a trailing * as a wildcard
	if bad {
		return invalidf("interface name %q: want 1 to %d printable ASCII characters, no quote, backslash or trailing *", name, maxIfNameLen)
	}
	return nil
}

// encoded is a Table translated into google/nftables objects, ready to be
// queued on a connection. Building it checks the whole table, so a table that
// cannot be expressed fails before anything is queued.
type encoded struct {
	table  *nftables.Table
	sets   []setElems
	chains []*nftables.Chain
	rules  []ruleMsg
}

type setElems struct {
	set   *nftables.Set
	elems []nftables.SetElement
}

// ruleMsg is one rule and the anonymous sets it looks up; nft creates those
// just before the rule, in the same transaction.
type ruleMsg struct {
	anon []setElems
	rule *nftables.Rule
}

// queueReplace queues the transaction that swaps the table for ours: create
// it if missing (so the delete cannot fail), delete it with everything in
// it, then build it again. The kernel applies the batch as one transaction,
// so packets see either the old table or the new one, never a mix.
func (enc *encoded) queueReplace(c *nftables.Conn) error {
	c.AddTable(enc.table)
	c.DelTable(enc.table)
	c.AddTable(enc.table)
	return enc.queueBuild(c, nil)
}

// queueBuild queues the table's sets (but those in skip), chains and rules.
func (enc *encoded) queueBuild(c *nftables.Conn, skip map[string]bool) error {
	for _, s := range enc.sets {
		if skip[s.set.Name] {
			continue
		}
		if err := c.AddSet(s.set, s.elems); err != nil {
			return fmt.Errorf("set %s: %w", s.set.Name, err)
		}
	}
	for _, ch := range enc.chains {
		c.AddChain(ch)
	}
	for _, r := range enc.rules {
		for _, s := range r.anon {
			if err := c.AddSet(s.set, s.elems); err != nil {
				return fmt.Errorf("chain %s: anonymous set: %w", r.rule.Chain.Name, err)
			}
		}
		c.AddRule(r.rule)
	}
	return nil
}

// queueReplaceKeeping rebuilds the live table in place, in one transaction:
// every rule, chain and set goes and comes back, except the kept sets, which
// stay with their elements. Rules are flushed before chains and sets are
// deleted, so nothing is still referenced when it goes.
func (enc *encoded) queueReplaceKeeping(c *nftables.Conn, kept map[string]bool, chains []*nftables.Chain, sets []*nftables.Set) error {
	for _, ch := range chains {
		c.FlushChain(ch)
	}
	for _, ch := range chains {
		c.DelChain(ch)
	}
	for _, s := range sets {
		if kept[s.Name] || s.Anonymous || strings.HasPrefix(s.Name, "__") {
			continue // anonymous sets went with their rules
		}
		c.DelSet(s)
	}
	return enc.queueBuild(c, kept)
}

type encoder struct {
	nt     *nftables.Table
	sets   map[string]*Set
	setIDs map[string]uint32
	chains map[string]*Chain
	lastID uint32
}

// newID returns a set ID for this transaction. Lookups of anonymous sets
// name the set by ID, and the kernel resolves a name it cannot find by ID
// too, so every set in the batch, named or not, gets its own.
func (e *encoder) newID() uint32 {
	e.lastID++
	return e.lastID
}

func encode(t *Table) (*encoded, error) {
	if t == nil {
		return nil, invalidf("nil table")
	}
	if err := checkName("table", t.Name); err != nil {
		return nil, err
	}
	e := &encoder{
		nt:     &nftables.Table{Name: t.Name, Family: nftables.TableFamilyINet},
		sets:   make(map[string]*Set, len(t.Sets)),
		setIDs: make(map[string]uint32, len(t.Sets)),
		chains: make(map[string]*Chain, len(t.Chains)),
	}
	enc := &encoded{table: e.nt}
	for i, s := range t.Sets {
		if s == nil {
			return nil, invalidf("set %d is nil", i)
		}
		se, err := e.namedSet(s)
		if err != nil {
			return nil, fmt.Errorf("set %s: %w", s.Name, err)
		}
		enc.sets = append(enc.sets, se)
	}
	// Chains go in the order of the model: a jump target need not come
	// first, because all chains are created before any rule in the batch.
	// Keeping the order makes `nft list` show what Text shows.
	nrules := 0
	for i, c := range t.Chains {
		if c == nil {
			return nil, invalidf("chain %d is nil", i)
		}
		ch, err := e.chain(c)
		if err != nil {
			return nil, fmt.Errorf("chain %s: %w", c.Name, err)
		}
		enc.chains = append(enc.chains, ch)
		nrules += len(c.Rules)
	}
	enc.rules = make([]ruleMsg, 0, nrules)
	for i, c := range t.Chains {
		for j, r := range c.Rules {
			m, err := e.rule(enc.chains[i], r)
			if err != nil {
				return nil, fmt.Errorf("chain %s: rule %d: %w", c.Name, j, err)
			}
			enc.rules = append(enc.rules, m)
		}
	}
	return enc, nil
}

func (e *encoder) chain(c *Chain) (*nftables.Chain, error) {
	if err := checkName("chain", c.Name); err != nil {
		return nil, err
	}
	if _, dup := e.chains[c.Name]; dup {
		return nil, invalidf("chain %s defined twice", c.Name)
	}
	e.chains[c.Name] = c
	ch := &nftables.Chain{Name: c.Name, Table: e.nt}
	var hook *nftables.ChainHook
	switch c.Hook {
	case HookNone:
		return ch, nil
	case HookInput:
		hook = nftables.ChainHookInput
	case HookOutput:
		hook = nftables.ChainHookOutput
	case HookForward:
		hook = nftables.ChainHookForward
	case HookPrerouting:
		hook = nftables.ChainHookPrerouting
	default:
		return nil, invalidf("unknown hook %d", c.Hook)
	}
	ctype, prio := nftables.ChainTypeFilter, c.Priority
	switch {
	case c.Type == ChainNAT && c.Hook == HookPrerouting:
		ctype, prio = nftables.ChainTypeNAT, prio-100
	case c.Type == ChainNAT || c.Hook == HookPrerouting:
		return nil, invalidf("chain %s: moat makes nat chains at prerouting only, and filter chains elsewhere", c.Name)
	case c.Type != ChainFilter:
		return nil, invalidf("chain %s: unknown type %d", c.Name, c.Type)
	}
	if prio < math.MinInt32 || prio > math.MaxInt32 {
		return nil, invalidf("priority %d out of range", c.Priority)
	}
	var policy nftables.ChainPolicy
	switch c.Policy {
	case VerdictAccept:
		policy = nftables.ChainPolicyAccept
	case VerdictDrop:
		policy = nftables.ChainPolicyDrop
	default:
		return nil, invalidf("policy must be accept or drop")
	}
	ch.Type = ctype
	ch.Hooknum = hook
	ch.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(prio))
	ch.Policy = &policy
	return ch, nil
}

// keyRange is an inclusive range of set keys in network byte order.
type keyRange struct{ lo, hi []byte }

func (e *encoder) namedSet(s *Set) (setElems, error) {
	if err := checkName("set", s.Name); err != nil {
		return setElems{}, err
	}
	if _, dup := e.sets[s.Name]; dup {
		return setElems{}, invalidf("set defined twice")
	}
	if s.Timeout < 0 || s.Timeout%time.Millisecond != 0 {
		return setElems{}, invalidf("timeout %v: want a whole number of milliseconds, not negative", s.Timeout)
	}
	if err := checkString("set comment", s.Comment, maxCommentLen); err != nil {
		return setElems{}, err
	}
	var (
		kt     nftables.SetDatatype
		ranges []keyRange
	)
	switch s.Type {
	case KeyIPv4, KeyIPv6:
		v6 := s.Type == KeyIPv6
		kt = nftables.TypeIPAddr
		if v6 {
			kt = nftables.TypeIP6Addr
		}
		if len(s.Ports) > 0 {
			return setElems{}, invalidf("ports in an address set")
		}
		for _, p := range s.Prefixes {
			if err := checkPrefix(p, v6); err != nil {
				return setElems{}, err
			}
			if !s.Interval && !p.IsSingleIP() {
				return setElems{}, invalidf("prefix %s needs an interval set", p)
			}
			ranges = append(ranges, prefixRange(p))
		}
	case KeyPort:
		kt = nftables.TypeInetService
		if len(s.Prefixes) > 0 {
			return setElems{}, invalidf("prefixes in a port set")
		}
		for _, r := range s.Ports {
			if r.First > r.Last {
				return setElems{}, invalidf("port range %d-%d is inverted", r.First, r.Last)
			}
			if !s.Interval && r.First != r.Last {
				return setElems{}, invalidf("port range %s needs an interval set", r)
			}
			ranges = append(ranges, portKeyRange(r))
		}
	default:
		return setElems{}, invalidf("unknown key type %d", s.Type)
	}
	var elems []nftables.SetElement
	if s.Interval {
		// Without auto-merge, nft refuses overlapping intervals in a named
		// set and keeps adjacent ones apart; so do we.
		sorted, err := sortIntervals(ranges, false)
		if err != nil {
			return setElems{}, err
		}
		elems = intervalElems(sorted)
	} else {
		elems = exactElems(ranges)
	}
	e.sets[s.Name] = s
	id := e.newID()
	e.setIDs[s.Name] = id
	return setElems{
		set: &nftables.Set{
			Table:      e.nt,
			ID:         id,
			Name:       s.Name,
			Interval:   s.Interval,
			Dynamic:    s.Dynamic,
			HasTimeout: s.Timeout > 0 || s.Timeouts,
			Timeout:    s.Timeout,
			Size:       s.Size,
			KeyType:    kt,
			// Addresses and ports are big-endian; nft records this in the
			// set's user data, and so do we.
			KeyByteOrder: binaryutil.BigEndian,
			Comment:      s.Comment,
		},
		elems: elems,
	}, nil
}

func checkPrefix(p netip.Prefix, v6 bool) error {
	switch {
	case !p.IsValid():
		return invalidf("invalid prefix %v", p)
	case v6 && !p.Addr().Is6():
		return invalidf("ipv4 prefix %s where ipv6 is expected", p)
	case !v6 && !p.Addr().Is4():
		return invalidf("prefix %s is not ipv4", p)
	}
	return nil
}

func addrBytes(a netip.Addr) []byte {
	if a.Is4() {
		b := a.As4()
		return b[:]
	}
	b := a.As16()
	return b[:]
}

func prefixRange(p netip.Prefix) keyRange {
	lo := addrBytes(p.Masked().Addr())
	hi := slices.Clone(lo)
	for i := p.Bits(); i < len(hi)*8; i++ {
		hi[i/8] |= 0x80 >> (i % 8)
	}
	return keyRange{lo, hi}
}

func portKeyRange(r PortRange) keyRange {
	return keyRange{binaryutil.BigEndian.PutUint16(r.First), binaryutil.BigEndian.PutUint16(r.Last)}
}

// next returns k+1, and whether k was not already the largest key.
func next(k []byte) ([]byte, bool) {
	n := slices.Clone(k)
	for i := len(n) - 1; i >= 0; i-- {
		n[i]++
		if n[i] != 0 {
			return n, true
		}
	}
	return n, false
}

func isZero(k []byte) bool { return !slices.ContainsFunc(k, func(b byte) bool { return b != 0 }) }

// sortIntervals sorts ranges and drops duplicates. With merge, ranges that
// overlap or touch become one, as nft does for anonymous sets; without it,
// overlapping ranges are an error, as in nft for named sets.
func sortIntervals(rs []keyRange, merge bool) ([]keyRange, error) {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b keyRange) int {
		if c := bytes.Compare(a.lo, b.lo); c != 0 {
			return c
		}
		return bytes.Compare(a.hi, b.hi)
	})
	out := rs[:0]
	for _, r := range rs {
		if len(out) == 0 {
			out = append(out, r)
			continue
		}
		last := &out[len(out)-1]
		if bytes.Equal(last.lo, r.lo) && bytes.Equal(last.hi, r.hi) {
			continue
		}
		if merge {
			if after, ok := next(last.hi); !ok || bytes.Compare(r.lo, after) <= 0 {
				if bytes.Compare(r.hi, last.hi) > 0 {
					last.hi = r.hi
				}
				continue
			}
		} else if bytes.Compare(r.lo, last.hi) <= 0 {
			return nil, invalidf("conflicting intervals %s and %s", rangeText(*last), rangeText(r))
		}
		out = append(out, r)
	}
	return out, nil
}

func rangeText(r keyRange) string {
	if len(r.lo) == 2 {
		return PortRange{binaryutil.BigEndian.Uint16(r.lo), binaryutil.BigEndian.Uint16(r.hi)}.String()
	}
	lo, _ := netip.AddrFromSlice(r.lo)
	hi, _ := netip.AddrFromSlice(r.hi)
	return lo.String() + "-" + hi.String()
}

// intervalElems lays sorted, disjoint ranges out as the kernel's interval
// sets store them, exactly as nft does: each range is a start element and an
// end element holding the first key after it. If the first range does not
// start at zero, an end element at zero comes first. A range that reaches
// the largest key has no end element; its start carries the "interval open"
// flag in its user data instead.
func intervalElems(rs []keyRange) []nftables.SetElement {
	if len(rs) == 0 {
		return nil
	}
	elems := make([]nftables.SetElement, 0, 2*len(rs)+1)
	if !isZero(rs[0].lo) {
		elems = append(elems, nftables.SetElement{Key: make([]byte, len(rs[0].lo)), IntervalEnd: true})
	}
	for _, r := range rs {
		end, ok := next(r.hi)
		if !ok {
			elems = append(elems, nftables.SetElement{Key: r.lo, IntervalOpen: true})
			continue
		}
		elems = append(elems, nftables.SetElement{Key: r.lo}, nftables.SetElement{Key: end, IntervalEnd: true})
	}
	return elems
}

// exactElems returns one element per distinct key, in first-seen order.
func exactElems(rs []keyRange) []nftables.SetElement {
	elems := make([]nftables.SetElement, 0, len(rs))
	seen := make(map[string]bool, len(rs))
	for _, r := range rs {
		if seen[string(r.lo)] {
			continue
		}
		seen[string(r.lo)] = true
		elems = append(elems, nftables.SetElement{Key: r.lo})
	}
	return elems
}

// ruleEnc builds one rule. Like nft, it tracks which layer-3 family and
// layer-4 protocol the rule has matched so far: a match that depends on one
// (ip saddr on ipv4, tcp dport on tcp) is preceded by the dependency only
// when the rule has not matched it yet, and a conflicting one is an error.
type ruleEnc struct {
	e     *encoder
	exprs []expr.Any
	anon  []setElems
	nf    byte // 0, or the NFPROTO_* the rule matched
	l4    int  // -1, or the protocol the rule matched
}

func (e *encoder) rule(ch *nftables.Chain, r *Rule) (ruleMsg, error) {
	if r == nil {
		return ruleMsg{}, invalidf("nil rule")
	}
	if len(r.Exprs) == 0 {
		return ruleMsg{}, invalidf("rule has no expressions")
	}
	if err := checkString("comment", r.Comment, maxCommentLen); err != nil {
		return ruleMsg{}, err
	}
	re := &ruleEnc{e: e, l4: -1, exprs: make([]expr.Any, 0, 4*len(r.Exprs))}
	for i, x := range r.Exprs {
		if isNil(x) {
			return ruleMsg{}, invalidf("expression %d is nil", i)
		}
		if _, ok := x.(*DNAT); ok && ch.Type != nftables.ChainTypeNAT {
			return ruleMsg{}, invalidf("%s outside a nat chain", exprText(x))
		}
		if v, ok := x.(*Verdict); ok && i != len(r.Exprs)-1 {
			return ruleMsg{}, invalidf("verdict %s is not the last expression", exprText(v))
		}
		if err := re.expr(x); err != nil {
			return ruleMsg{}, fmt.Errorf("expression %d: %w", i, err)
		}
	}
	rule := &nftables.Rule{Table: e.nt, Chain: ch, Exprs: re.exprs}
	if r.Comment != "" {
		// nft keeps the comment in the rule's user data, as a TLV of type
		// comment holding the NUL-terminated string.
		rule.UserData = userdata.AppendString(nil, userdata.TypeComment, r.Comment)
	}
	return ruleMsg{anon: re.anon, rule: rule}, nil
}

// isNil reports whether x is nil or a nil pointer; every Expr is a pointer.
func isNil(x Expr) bool {
	v := reflect.ValueOf(x)
	return x == nil || v.Kind() == reflect.Pointer && v.IsNil()
}

func addrKeyType(v6 bool) KeyType {
	if v6 {
		return KeyIPv6
	}
	return KeyIPv4
}

func (re *ruleEnc) add(x ...expr.Any) { re.exprs = append(re.exprs, x...) }

func nfproto(v6 bool) byte {
	if v6 {
		return unix.NFPROTO_IPV6
	}
	return unix.NFPROTO_IPV4
}

func familyName(nf byte) string {
	if nf == unix.NFPROTO_IPV6 {
		return "ipv6"
	}
	return "ipv4"
}

func metaCmp(key expr.MetaKey, data []byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: data},
	}
}

// needFamily makes the rule match layer-3 family v6, adding meta nfproto
// unless the rule already matches it.
func (re *ruleEnc) needFamily(v6 bool) error {
	want := nfproto(v6)
	switch re.nf {
	case want:
		return nil
	case 0:
		re.add(metaCmp(expr.MetaKeyNFPROTO, []byte{want})...)
		re.nf = want
		return nil
	}
	return invalidf("conflicting families: %s and %s", familyName(re.nf), familyName(want))
}

// needProto makes the rule match layer-4 protocol p, adding meta l4proto
// unless the rule already matches it.
func (re *ruleEnc) needProto(p uint8) error {
	switch re.l4 {
	case int(p):
		return nil
	case -1:
		re.add(metaCmp(expr.MetaKeyL4PROTO, []byte{p})...)
		re.l4 = int(p)
		return nil
	}
	return invalidf("conflicting protocols: %s and %s", protoName(uint8(re.l4)), protoName(p))
}

func (re *ruleEnc) expr(x Expr) error {
	switch x := x.(type) {
	case *IfName:
		if err := checkIfName(x.Name); err != nil {
			return err
		}
		key := expr.MetaKeyOIFNAME
		if x.In {
			key = expr.MetaKeyIIFNAME
		}
		// The kernel compares the whole IFNAMSIZ buffer, NUL padded.
		name := make([]byte, unix.IFNAMSIZ)
		copy(name, x.Name)
		re.add(metaCmp(key, name)...)
	case *NfProto:
		if re.nf != 0 && re.nf != nfproto(x.V6) {
			return invalidf("conflicting families: %s and %s", familyName(re.nf), familyName(nfproto(x.V6)))
		}
		re.add(metaCmp(expr.MetaKeyNFPROTO, []byte{nfproto(x.V6)})...)
		re.nf = nfproto(x.V6)
	case *L4Proto:
		if re.l4 != -1 && re.l4 != int(x.Proto) {
			return invalidf("conflicting protocols: %s and %s", protoName(uint8(re.l4)), protoName(x.Proto))
		}
		re.add(metaCmp(expr.MetaKeyL4PROTO, []byte{x.Proto})...)
		re.l4 = int(x.Proto)
	case *Addr:
		return re.addr(x)
	case *Port:
		return re.port(x)
	case *CtState:
		return re.ctState(x)
	case *TCPFlags:
		if x.Mask == 0 {
			return invalidf("tcp flags with an empty mask")
		}
		if x.Value&^x.Mask != 0 {
			return invalidf("tcp flags: value %#x outside mask %#x", x.Value, x.Mask)
		}
		if err := re.needProto(ProtoTCP); err != nil {
			return err
		}
		op := expr.CmpOpEq
		if x.Negate {
			op = expr.CmpOpNeq
		}
		re.add(
			&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 1, Mask: []byte{x.Mask}, Xor: []byte{0}},
			&expr.Cmp{Op: op, Register: reg, Data: []byte{x.Value}},
		)
	case *ICMPType:
		return re.icmpType(x)
	case *Limit:
		l, err := limitExpr(x)
		if err != nil {
			return err
		}
		re.add(l)
	case *SetAdd:
		return re.setAdd(x)
	case *Meter:
		return re.meter(x)
	case *CtCount:
		return invalidf("ct count outside a meter")
	case *Counter:
		re.add(&expr.Counter{})
	case *CtMark:
		if x.Mask == 0 || x.Value&^x.Mask != 0 {
			return invalidf("ct mark: value %#x outside mask %#x", x.Value, x.Mask)
		}
		re.add(ctBits(expr.CtKeyMARK, x.Mask, x.Value)...)
	case *CtStatus:
		if x.Bits == 0 {
			return invalidf("ct status without bits")
		}
		re.add(ctBits(expr.CtKeySTATUS, x.Bits, x.Bits)...)
	case *CtMarkSet:
		if x.Bits == 0 {
			return invalidf("ct mark set without bits")
		}
		re.add(
			&expr.Ct{Key: expr.CtKeyMARK, Register: reg},
			&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(^x.Bits), Xor: binaryutil.NativeEndian.PutUint32(x.Bits)},
			&expr.Ct{Key: expr.CtKeyMARK, Register: reg, SourceRegister: true},
		)
	case *FibLocal:
		re.add(
			&expr.Fib{Register: reg, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: binaryutil.NativeEndian.PutUint32(uint32(unix.RTN_LOCAL))},
		)
	case *RPFilter:
		re.add(
			&expr.Fib{Register: reg, FlagSADDR: true, FlagIIF: x.Strict, ResultOIF: true, FlagPRESENT: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: make([]byte, 4)},
		)
	case *DNAT:
		return re.dnat(x)
	case *Log:
		l, err := logExpr(x)
		if err != nil {
			return err
		}
		re.add(l)
	case *Verdict:
		return re.verdict(x)
	default:
		return invalidf("unknown expression %T", x)
	}
	return nil
}

func (re *ruleEnc) namedSet(name string) (*Set, uint32, error) {
	s, ok := re.e.sets[name]
	if !ok {
		return nil, 0, invalidf("no set named %s", name)
	}
	return s, re.e.setIDs[name], nil
}

// anonSet creates the constant anonymous set for a literal list, as nft
// does for `{ a, b }`: an interval set when any element is a range, its
// ranges merged, otherwise a plain set of distinct keys.
func (re *ruleEnc) anonSet(kt nftables.SetDatatype, ranges []keyRange) (*expr.Lookup, error) {
	interval := slices.ContainsFunc(ranges, func(r keyRange) bool { return !bytes.Equal(r.lo, r.hi) })
	var elems []nftables.SetElement
	if interval {
		sorted, err := sortIntervals(ranges, true)
		if err != nil {
			return nil, err
		}
		elems = intervalElems(sorted)
	} else {
		elems = exactElems(ranges)
	}
	id := re.e.newID()
	// The kernel names an anonymous set itself from the "__set%d" pattern;
	// the rule finds it by ID.
	s := &nftables.Set{
		Table:        re.e.nt,
		ID:           id,
		Name:         "__set%d",
		Anonymous:    true,
		Constant:     true,
		Interval:     interval,
		KeyType:      kt,
		KeyByteOrder: binaryutil.BigEndian,
	}
	re.anon = append(re.anon, setElems{set: s, elems: elems})
	return &expr.Lookup{SourceRegister: reg, SetName: s.Name, SetID: id}, nil
}

func addrOffset(dir Dir, v6 bool) (uint32, uint32, error) {
	switch {
	case dir == Src && !v6:
		return 12, 4, nil
	case dir == Dst && !v6:
		return 16, 4, nil
	case dir == Src && v6:
		return 8, 16, nil
	case dir == Dst && v6:
		return 24, 16, nil
	}
	return 0, 0, invalidf("unknown direction %d", dir)
}

func (re *ruleEnc) addr(x *Addr) error {
	off, size, err := addrOffset(x.Dir, x.V6)
	if err != nil {
		return err
	}
	if (x.Set == "") == (len(x.Prefixes) == 0) {
		return invalidf("address match needs either prefixes or a set")
	}
	for _, p := range x.Prefixes {
		if err := checkPrefix(p, x.V6); err != nil {
			return err
		}
	}
	if err := re.needFamily(x.V6); err != nil {
		return err
	}
	load := &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size}
	op := expr.CmpOpEq
	if x.Negate {
		op = expr.CmpOpNeq
	}
	switch {
	case x.Set != "":
		s, id, err := re.namedSet(x.Set)
		if err != nil {
			return err
		}
		if want := addrKeyType(x.V6); s.Type != want {
			return invalidf("set %s holds %s, not %s", x.Set, s.Type, want)
		}
		re.add(load, &expr.Lookup{SourceRegister: reg, SetName: x.Set, SetID: id, Invert: x.Negate})
	case len(x.Prefixes) == 1:
		p := x.Prefixes[0].Masked()
		addr := addrBytes(p.Addr())
		switch bits := p.Bits(); {
		case bits == len(addr)*8:
			re.add(load, &expr.Cmp{Op: op, Register: reg, Data: addr})
		case bits > 0 && bits%8 == 0:
			// For a whole-byte prefix, nft loads only the bytes it
			// compares.
			load.Len = uint32(bits / 8)
			re.add(load, &expr.Cmp{Op: op, Register: reg, Data: addr[:bits/8]})
		default:
			r := prefixRange(p)
			mask := make([]byte, len(addr))
			for i := range mask {
				mask[i] = ^(r.hi[i] ^ r.lo[i])
			}
			re.add(load,
				&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: size, Mask: mask, Xor: make([]byte, size)},
				&expr.Cmp{Op: op, Register: reg, Data: addr})
		}
	default:
		ranges := make([]keyRange, len(x.Prefixes))
		for i, p := range x.Prefixes {
			ranges[i] = prefixRange(p)
		}
		kt := nftables.TypeIPAddr
		if x.V6 {
			kt = nftables.TypeIP6Addr
		}
		lookup, err := re.anonSet(kt, ranges)
		if err != nil {
			return err
		}
		lookup.Invert = x.Negate
		re.add(load, lookup)
	}
	return nil
}

func (re *ruleEnc) port(x *Port) error {
	if x.Proto != ProtoTCP && x.Proto != ProtoUDP {
		return invalidf("port match on protocol %d: want tcp or udp", x.Proto)
	}
	var off uint32
	switch x.Dir {
	case Src:
		off = 0
	case Dst:
		off = 2
	default:
		return invalidf("unknown direction %d", x.Dir)
	}
	if (x.Set == "") == (len(x.Ranges) == 0) {
		return invalidf("port match needs either ranges or a set")
	}
	for _, r := range x.Ranges {
		if r.First > r.Last {
			return invalidf("port range %d-%d is inverted", r.First, r.Last)
		}
	}
	if err := re.needProto(x.Proto); err != nil {
		return err
	}
	load := &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2}
	switch {
	case x.Set != "":
		s, id, err := re.namedSet(x.Set)
		if err != nil {
			return err
		}
		if s.Type != KeyPort {
			return invalidf("set %s holds %s, not %s", x.Set, s.Type, KeyPort)
		}
		re.add(load, &expr.Lookup{SourceRegister: reg, SetName: x.Set, SetID: id})
	case len(x.Ranges) == 1 && x.Ranges[0].First == x.Ranges[0].Last:
		re.add(load, &expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: binaryutil.BigEndian.PutUint16(x.Ranges[0].First)})
	case len(x.Ranges) == 1:
		// nft compares a single range with two cmps, not a range
		// expression.
		r := x.Ranges[0]
		re.add(load,
			&expr.Cmp{Op: expr.CmpOpGte, Register: reg, Data: binaryutil.BigEndian.PutUint16(r.First)},
			&expr.Cmp{Op: expr.CmpOpLte, Register: reg, Data: binaryutil.BigEndian.PutUint16(r.Last)})
	default:
		ranges := make([]keyRange, len(x.Ranges))
		for i, r := range x.Ranges {
			ranges[i] = portKeyRange(r)
		}
		lookup, err := re.anonSet(nftables.TypeInetService, ranges)
		if err != nil {
			return err
		}
		re.add(load, lookup)
	}
	return nil
}

const ctStateBits = CtInvalid | CtEstablished | CtRelated | CtNew | CtUntracked

func (re *ruleEnc) ctState(x *CtState) error {
	if x.States == 0 || x.States&^ctStateBits != 0 {
		return invalidf("ct state %#x: want a non-empty set of known states", x.States)
	}
	// ct state is a host-endian bitmask with exactly one bit set per
	// packet. nft matches a set of states as (state & mask) != 0 and a
	// single excluded state as state != bit; a set of excluded states is
	// (state & mask) == 0.
	st := binaryutil.NativeEndian.PutUint32(x.States)
	zero := make([]byte, 4)
	re.add(&expr.Ct{Key: expr.CtKeySTATE, Register: reg})
	if x.Negate && x.States&(x.States-1) == 0 {
		re.add(&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: st})
		return nil
	}
	op := expr.CmpOpNeq
	if x.Negate {
		op = expr.CmpOpEq
	}
	re.add(
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4, Mask: st, Xor: zero},
		&expr.Cmp{Op: op, Register: reg, Data: zero},
	)
	return nil
}

func (re *ruleEnc) icmpType(x *ICMPType) error {
	if len(x.Types) == 0 {
		return invalidf("icmp type match without types")
	}
	proto, kt := ProtoICMP, nftables.TypeICMPType
	if x.V6 {
		proto, kt = ProtoICMPv6, nftables.TypeICMP6Type
	}
	// icmp lives under ip and icmpv6 under ip6: unless the rule already
	// matches the protocol, nft adds the family match, then the protocol.
	if re.nf != 0 && re.nf != nfproto(x.V6) {
		return invalidf("conflicting families: %s and %s", familyName(re.nf), familyName(nfproto(x.V6)))
	}
	if re.l4 != int(proto) {
		if re.l4 != -1 {
			return invalidf("conflicting protocols: %s and %s", protoName(uint8(re.l4)), protoName(proto))
		}
		if err := re.needFamily(x.V6); err != nil {
			return err
		}
		if err := re.needProto(proto); err != nil {
			return err
		}
	}
	load := &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1}
	if len(x.Types) == 1 {
		re.add(load, &expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{x.Types[0]}})
		return nil
	}
	ranges := make([]keyRange, len(x.Types))
	for i, t := range x.Types {
		ranges[i] = keyRange{[]byte{t}, []byte{t}}
	}
	lookup, err := re.anonSet(kt, ranges)
	if err != nil {
		return err
	}
	re.add(load, lookup)
	return nil
}

func limitExpr(x *Limit) (*expr.Limit, error) {
	var unit expr.LimitTime
	switch x.Unit {
	case time.Second:
		unit = expr.LimitTimeSecond
	case time.Minute:
		unit = expr.LimitTimeMinute
	case time.Hour:
		unit = expr.LimitTimeHour
	case 24 * time.Hour:
		unit = expr.LimitTimeDay
	case 7 * 24 * time.Hour:
		unit = expr.LimitTimeWeek
	default:
		return nil, invalidf("limit unit %v: want a second, minute, hour, day or week", x.Unit)
	}
	if x.Rate == 0 {
		return nil, invalidf("limit rate 0")
	}
	burst := x.Burst
	if burst == 0 {
		burst = defaultBurst
	}
	return &expr.Limit{Type: expr.LimitTypePkts, Rate: x.Rate, Unit: unit, Burst: burst, Over: x.Over}, nil
}

func (re *ruleEnc) meter(x *Meter) error {
	s, id, err := re.namedSet(x.Set)
	if err != nil {
		return err
	}
	if want := addrKeyType(x.V6); s.Type != want {
		return invalidf("meter set %s holds %s, not %s", x.Set, s.Type, want)
	}
	if !s.Dynamic {
		return invalidf("meter set %s is not dynamic", x.Set)
	}
	off, size, _ := addrOffset(Src, x.V6)
	if x.PrefixLen < 0 || x.PrefixLen > int(size)*8 {
		return invalidf("meter prefix length %d out of range", x.PrefixLen)
	}
	var (
		op    uint32
		inner expr.Any
	)
	if isNil(x.Stmt) {
		return invalidf("meter without a statement")
	}
	switch st := x.Stmt.(type) {
	case *Limit:
		l, err := limitExpr(st)
		if err != nil {
			return err
		}
		op, inner = unix.NFT_DYNSET_OP_UPDATE, l
	case *CtCount:
		var flags uint32
		if st.Over {
			flags = expr.NFT_CONNLIMIT_F_INV
		}
		op, inner = unix.NFT_DYNSET_OP_ADD, &expr.Connlimit{Count: st.N, Flags: flags}
	default:
		return invalidf("meter statement %T: want *Limit or *CtCount", x.Stmt)
	}
	if err := re.needFamily(x.V6); err != nil {
		return err
	}
	re.add(&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size})
	if x.PrefixLen > 0 && x.PrefixLen < int(size)*8 {
		mask := make([]byte, size)
		for i := range x.PrefixLen {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		re.add(&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: size, Mask: mask, Xor: make([]byte, size)})
	}
	re.add(&expr.Dynset{SrcRegKey: reg, SetName: x.Set, SetID: id, Operation: op, Exprs: []expr.Any{inner}})
	return nil
}

func (re *ruleEnc) setAdd(x *SetAdd) error {
	s, id, err := re.namedSet(x.Set)
	if err != nil {
		return err
	}
	if want := addrKeyType(x.V6); s.Type != want {
		return invalidf("set %s holds %s, not %s", x.Set, s.Type, want)
	}
	if x.Timeout < 0 || x.Timeout%time.Millisecond != 0 {
		return invalidf("timeout %v: want whole milliseconds", x.Timeout)
	}
	if x.Timeout > 0 && s.Timeout == 0 && !s.Timeouts {
		return invalidf("set %s has no timeout flag", x.Set)
	}
	if !s.Dynamic {
		// nft marks a set that rules add to as dynamic; say so, so that
		// text and netlink agree and a kept set keeps its shape.
		return invalidf("set %s is added to by a rule but is not dynamic", x.Set)
	}
	if err := re.needFamily(x.V6); err != nil {
		return err
	}
	off, size, _ := addrOffset(Src, x.V6)
	re.add(&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size})
	re.add(&expr.Dynset{SrcRegKey: reg, SetName: x.Set, SetID: id, Operation: unix.NFT_DYNSET_OP_ADD, Timeout: x.Timeout})
	return nil
}

var logLevels = map[string]expr.LogLevel{
	"emerg":  expr.LogLevelEmerg,
	"alert":  expr.LogLevelAlert,
	"crit":   expr.LogLevelCrit,
	"err":    expr.LogLevelErr,
	"warn":   expr.LogLevelWarning,
	"notice": expr.LogLevelNotice,
	"info":   expr.LogLevelInfo,
	"debug":  expr.LogLevelDebug,
}

func logExpr(x *Log) (*expr.Log, error) {
	if err := checkString("log prefix", x.Prefix, maxLogPrefixLen); err != nil {
		return nil, err
	}
	l := &expr.Log{}
	if x.Prefix != "" {
		l.Key |= 1 << unix.NFTA_LOG_PREFIX
		l.Data = []byte(x.Prefix)
	}
	switch {
	case x.Group != nil:
		// With a group the packet goes to nfnetlink_log and a level has
		// no meaning; nft sends none.
		l.Key |= 1 << unix.NFTA_LOG_GROUP
		l.Group = *x.Group
	case x.Level != "":
		lvl, ok := logLevels[x.Level]
		if !ok {
			return nil, invalidf("log level %q: want emerg, alert, crit, err, warn, notice, info or debug", x.Level)
		}
		l.Key |= 1 << unix.NFTA_LOG_LEVEL
		l.Level = lvl
	}
	return l, nil
}

func (re *ruleEnc) verdict(x *Verdict) error {
	if x.Kind != VerdictJump && x.Chain != "" {
		return invalidf("chain %s given for a verdict that is not a jump", x.Chain)
	}
	switch x.Kind {
	case VerdictAccept:
		re.add(&expr.Verdict{Kind: expr.VerdictAccept})
	case VerdictDrop:
		re.add(&expr.Verdict{Kind: expr.VerdictDrop})
	case VerdictReturn:
		re.add(&expr.Verdict{Kind: expr.VerdictReturn})
	case VerdictJump:
		c, ok := re.e.chains[x.Chain]
		if !ok {
			return invalidf("jump to missing chain %q", x.Chain)
		}
		if c.Hook != HookNone {
			return invalidf("jump to base chain %s", x.Chain)
		}
		re.add(&expr.Verdict{Kind: expr.VerdictJump, Chain: x.Chain})
	case VerdictReject:
		// icmpx lets the kernel answer in the packet's family: icmp or
		// icmpv6 port unreachable.
		re.add(&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH})
	case VerdictRejectTCPReset:
		// A reset can only answer tcp. Like nft, put the protocol match
		// the kernel requires at the head of the rule if it has none.
		switch re.l4 {
		case int(ProtoTCP):
		case -1:
			re.exprs = append(metaCmp(expr.MetaKeyL4PROTO, []byte{ProtoTCP}), re.exprs...)
			re.l4 = int(ProtoTCP)
		default:
			return invalidf("reject with tcp reset in a rule matching %s", protoName(uint8(re.l4)))
		}
		re.add(&expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
	default:
		return invalidf("unknown verdict %d", x.Kind)
	}
	return nil
}

// ctBits loads a conntrack key and compares key & mask with value, both
// host-endian.
func ctBits(key expr.CtKey, mask, value uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Key: key, Register: reg},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: binaryutil.NativeEndian.PutUint32(value)},
	}
}

// dnat loads the target into registers and rewrites the destination: the
// address in register 1 and the port in register 2 for dnat, the port in
// register 1 for redirect, as nft does.
func (re *ruleEnc) dnat(x *DNAT) error {
	if x.Port == 0 {
		return invalidf("dnat without a port")
	}
	if re.l4 != int(ProtoTCP) && re.l4 != int(ProtoUDP) {
		return invalidf("dnat to a port needs a tcp or udp match before it")
	}
	port := binaryutil.BigEndian.PutUint16(x.Port)
	if !x.Addr.IsValid() {
		re.add(
			&expr.Immediate{Register: reg, Data: port},
			&expr.Redir{RegisterProtoMin: reg, Flags: expr.NF_NAT_RANGE_PROTO_SPECIFIED},
		)
		return nil
	}
	addr := x.Addr.Unmap()
	if x.Addr.Zone() != "" || addr.IsUnspecified() {
		return invalidf("dnat to %s: want a plain unicast address", x.Addr)
	}
	v6 := addr.Is6()
	if re.nf != nfproto(v6) {
		return invalidf("dnat to %s needs a %s match before it", addr, familyName(nfproto(v6)))
	}
	re.add(
		&expr.Immediate{Register: reg, Data: addr.AsSlice()},
		&expr.Immediate{Register: reg + 1, Data: port},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: uint32(nfproto(v6)), RegAddrMin: reg, RegProtoMin: reg + 1, Specified: true},
	)
	return nil
}
