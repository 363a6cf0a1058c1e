package nft

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The JSON form of a Table is how moat keeps "the ruleset last applied" on
// disk for rollback, so it is exact: unmarshalling what MarshalJSON wrote
// gives back an equal table (empty slices come back nil). Expressions are a
// tagged union, {"type": "addr", ...}. Decoding is strict: unknown fields
// and unknown types are errors.

type jsonTable struct {
	Name   string      `json:"name"`
	Sets   []jsonSet   `json:"sets,omitempty"`
	Chains []jsonChain `json:"chains,omitempty"`
}

type jsonSet struct {
	Name     string         `json:"name"`
	Type     string         `json:"type"`
	Interval bool           `json:"interval,omitempty"`
	Dynamic  bool           `json:"dynamic,omitempty"`
	Timeout  string         `json:"timeout,omitempty"`
	Timeouts bool           `json:"timeouts,omitempty"`
	Keep     bool           `json:"keep,omitempty"`
	Size     uint32         `json:"size,omitempty"`
	Prefixes []netip.Prefix `json:"prefixes,omitempty"`
	Ports    []string       `json:"ports,omitempty"`
	Comment  string         `json:"comment,omitempty"`
}

type jsonChain struct {
	Name     string     `json:"name"`
	Type     string     `json:"type,omitempty"` // omitted: filter
	Hook     string     `json:"hook,omitempty"`
	Priority int        `json:"priority,omitempty"`
	Policy   string     `json:"policy,omitempty"` // omitted: accept, the zero VerdictKind
	Rules    []jsonRule `json:"rules,omitempty"`
}

type jsonRule struct {
	Exprs   []json.RawMessage `json:"exprs"`
	Comment string            `json:"comment,omitempty"`
}

// One struct per expression type; Type is the tag.
type (
	jsonIfName struct {
		Type string `json:"type"`
		In   bool   `json:"in,omitempty"`
		Name string `json:"name"`
	}
	jsonNfProto struct {
		Type string `json:"type"`
		V6   bool   `json:"v6,omitempty"`
	}
	jsonL4Proto struct {
		Type  string `json:"type"`
		Proto uint8  `json:"proto"`
	}
	jsonAddr struct {
		Type     string         `json:"type"`
		Dir      string         `json:"dir"`
		V6       bool           `json:"v6,omitempty"`
		Prefixes []netip.Prefix `json:"prefixes,omitempty"`
		Set      string         `json:"set,omitempty"`
		Negate   bool           `json:"negate,omitempty"`
	}
	jsonPort struct {
		Type   string   `json:"type"`
		Dir    string   `json:"dir"`
		Proto  uint8    `json:"proto"`
		Ranges []string `json:"ranges,omitempty"`
		Set    string   `json:"set,omitempty"`
	}
	jsonCtState struct {
		Type   string   `json:"type"`
		States []string `json:"states"`
		Negate bool     `json:"negate,omitempty"`
	}
	jsonTCPFlags struct {
		Type   string   `json:"type"`
		Mask   []string `json:"mask"`
		Value  []string `json:"value"`
		Negate bool     `json:"negate,omitempty"`
	}
	jsonICMPType struct {
		Type  string `json:"type"`
		V6    bool   `json:"v6,omitempty"`
		Types []int  `json:"types"` // not []uint8, which JSON writes as base64
	}
	jsonLimit struct {
		Type  string `json:"type"`
		Rate  uint64 `json:"rate"`
		Unit  string `json:"unit"`
		Burst uint32 `json:"burst,omitempty"`
		Over  bool   `json:"over,omitempty"`
	}
	jsonMeter struct {
		Type      string          `json:"type"`
		Set       string          `json:"set"`
		V6        bool            `json:"v6,omitempty"`
		PrefixLen int             `json:"prefix_len,omitempty"`
		Stmt      json.RawMessage `json:"stmt"`
	}
	jsonSetAdd struct {
		Type    string `json:"type"`
		Set     string `json:"set"`
		V6      bool   `json:"v6,omitempty"`
		Timeout string `json:"timeout,omitempty"`
	}
	jsonCtCount struct {
		Type string `json:"type"`
		N    uint32 `json:"n"`
		Over bool   `json:"over,omitempty"`
	}
	jsonCounter struct {
		Type string `json:"type"`
	}
	jsonCtBits struct {
		Type  string `json:"type"`
		Mask  uint32 `json:"mask,omitempty"`
		Value uint32 `json:"value"`
	}
	jsonRPFilter struct {
		Type   string `json:"type"`
		Strict bool   `json:"strict,omitempty"`
	}
	jsonDNAT struct {
		Type string     `json:"type"`
		Addr netip.Addr `json:"addr,omitzero"`
		Port uint16     `json:"port"`
	}
	jsonLog struct {
		Type   string  `json:"type"`
		Prefix string  `json:"prefix,omitempty"`
		Level  string  `json:"level,omitempty"`
		Group  *uint16 `json:"group,omitempty"`
	}
	jsonVerdict struct {
		Type  string `json:"type"`
		Kind  string `json:"kind"`
		Chain string `json:"chain,omitempty"`
	}
)

// MarshalJSON encodes the table. It fails on values it cannot name, such
// as a nil expression or an unknown hook, rather than write something that
// would not read back the same.
func (t *Table) MarshalJSON() ([]byte, error) {
	jt := jsonTable{Name: t.Name}
	for i, s := range t.Sets {
		if s == nil {
			return nil, fmt.Errorf("nft: marshal table %s: set %d is nil", t.Name, i)
		}
		js, err := marshalSet(s)
		if err != nil {
			return nil, fmt.Errorf("nft: marshal table %s: set %s: %w", t.Name, s.Name, err)
		}
		jt.Sets = append(jt.Sets, js)
	}
	for i, c := range t.Chains {
		if c == nil {
			return nil, fmt.Errorf("nft: marshal table %s: chain %d is nil", t.Name, i)
		}
		jc, err := marshalChain(c)
		if err != nil {
			return nil, fmt.Errorf("nft: marshal table %s: chain %s: %w", t.Name, c.Name, err)
		}
		jt.Chains = append(jt.Chains, jc)
	}
	return json.Marshal(jt)
}

// UnmarshalJSON decodes a table written by MarshalJSON, replacing all of t.
func (t *Table) UnmarshalJSON(data []byte) error {
	var jt jsonTable
	if err := strictUnmarshal(data, &jt); err != nil {
		return fmt.Errorf("nft: unmarshal table: %w", err)
	}
	nt := Table{Name: jt.Name}
	for _, js := range jt.Sets {
		s, err := unmarshalSet(js)
		if err != nil {
			return fmt.Errorf("nft: unmarshal table %s: set %s: %w", jt.Name, js.Name, err)
		}
		nt.Sets = append(nt.Sets, s)
	}
	for _, jc := range jt.Chains {
		c, err := unmarshalChain(jc)
		if err != nil {
			return fmt.Errorf("nft: unmarshal table %s: chain %s: %w", jt.Name, jc.Name, err)
		}
		nt.Chains = append(nt.Chains, c)
	}
	*t = nt
	return nil
}

func strictUnmarshal(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return nil
}

var keyTypes = map[KeyType]string{KeyIPv4: "ipv4_addr", KeyIPv6: "ipv6_addr", KeyPort: "inet_service"}

func marshalSet(s *Set) (jsonSet, error) {
	typ, ok := keyTypes[s.Type]
	if !ok {
		return jsonSet{}, fmt.Errorf("unknown key type %d", s.Type)
	}
	js := jsonSet{Name: s.Name, Type: typ, Interval: s.Interval, Dynamic: s.Dynamic, Size: s.Size, Timeouts: s.Timeouts, Keep: s.Keep,
		Prefixes: s.Prefixes, Comment: s.Comment, Ports: rangesText(s.Ports)}
	if s.Timeout != 0 {
		js.Timeout = s.Timeout.String()
	}
	return js, nil
}

func unmarshalSet(js jsonSet) (*Set, error) {
	s := &Set{Name: js.Name, Interval: js.Interval, Dynamic: js.Dynamic, Size: js.Size, Prefixes: js.Prefixes, Comment: js.Comment, Timeouts: js.Timeouts, Keep: js.Keep}
	var err error
	if s.Type, err = parseName(keyTypes, js.Type, "key type"); err != nil {
		return nil, err
	}
	if js.Timeout != "" {
		if s.Timeout, err = time.ParseDuration(js.Timeout); err != nil {
			return nil, err
		}
	}
	if s.Ports, err = parseRanges(js.Ports); err != nil {
		return nil, err
	}
	return s, nil
}

var (
	hooks        = map[Hook]string{HookInput: "input", HookOutput: "output", HookForward: "forward", HookPrerouting: "prerouting"}
	chainTypes   = map[ChainType]string{ChainFilter: "filter", ChainNAT: "nat"}
	verdictKinds = map[VerdictKind]string{
		VerdictAccept: "accept", VerdictDrop: "drop", VerdictReject: "reject",
		VerdictRejectTCPReset: "reject_tcp_reset", VerdictJump: "jump", VerdictReturn: "return",
	}
	dirs = map[Dir]string{Src: "src", Dst: "dst"}
)

// parseName finds the key whose name is s in a map of names.
func parseName[K comparable](names map[K]string, s, what string) (K, error) {
	for k, name := range names {
		if name == s {
			return k, nil
		}
	}
	var zero K
	return zero, fmt.Errorf("unknown %s %q", what, s)
}

// nameOf returns the name of k.
func nameOf[K comparable](names map[K]string, k K, what string) (string, error) {
	if s, ok := names[k]; ok {
		return s, nil
	}
	return "", fmt.Errorf("unknown %s %v", what, k)
}

func marshalChain(c *Chain) (jsonChain, error) {
	jc := jsonChain{Name: c.Name, Priority: c.Priority}
	var err error
	if c.Type != ChainFilter {
		if jc.Type, err = nameOf(chainTypes, c.Type, "chain type"); err != nil {
			return jsonChain{}, err
		}
	}
	if c.Hook != HookNone {
		if jc.Hook, err = nameOf(hooks, c.Hook, "hook"); err != nil {
			return jsonChain{}, err
		}
	}
	if c.Policy != VerdictAccept {
		if jc.Policy, err = nameOf(verdictKinds, c.Policy, "policy"); err != nil {
			return jsonChain{}, err
		}
	}
	for i, r := range c.Rules {
		if r == nil {
			return jsonChain{}, fmt.Errorf("rule %d is nil", i)
		}
		jr := jsonRule{Comment: r.Comment, Exprs: make([]json.RawMessage, 0, len(r.Exprs))}
		for j, x := range r.Exprs {
			raw, err := marshalExpr(x)
			if err != nil {
				return jsonChain{}, fmt.Errorf("rule %d: expression %d: %w", i, j, err)
			}
			jr.Exprs = append(jr.Exprs, raw)
		}
		jc.Rules = append(jc.Rules, jr)
	}
	return jc, nil
}

func unmarshalChain(jc jsonChain) (*Chain, error) {
	c := &Chain{Name: jc.Name, Priority: jc.Priority}
	var err error
	if jc.Type != "" {
		if c.Type, err = parseName(chainTypes, jc.Type, "chain type"); err != nil {
			return nil, err
		}
	}
	if jc.Hook != "" {
		if c.Hook, err = parseName(hooks, jc.Hook, "hook"); err != nil {
			return nil, err
		}
	}
	if jc.Policy != "" {
		if c.Policy, err = parseName(verdictKinds, jc.Policy, "policy"); err != nil {
			return nil, err
		}
	}
	for i, jr := range jc.Rules {
		r := &Rule{Comment: jr.Comment}
		for j, raw := range jr.Exprs {
			x, err := unmarshalExpr(raw)
			if err != nil {
				return nil, fmt.Errorf("rule %d: expression %d: %w", i, j, err)
			}
			r.Exprs = append(r.Exprs, x)
		}
		c.Rules = append(c.Rules, r)
	}
	return c, nil
}

func rangesText(rs []PortRange) []string {
	if rs == nil {
		return nil
	}
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.String()
	}
	return out
}

func parseRanges(ss []string) ([]PortRange, error) {
	if ss == nil {
		return nil, nil
	}
	out := make([]PortRange, len(ss))
	for i, s := range ss {
		first, last, isRange := strings.Cut(s, "-")
		f, err := strconv.ParseUint(first, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("port range %q: %w", s, err)
		}
		l := f
		if isRange {
			if l, err = strconv.ParseUint(last, 10, 16); err != nil {
				return nil, fmt.Errorf("port range %q: %w", s, err)
			}
		}
		out[i] = PortRange{uint16(f), uint16(l)}
	}
	return out, nil
}

// bitNames names the bits of a mask; bits without a name are an error.
func bitNames[T uint8 | uint32](v T, names []struct {
	bit  T
	name string
}) ([]string, error) {
	out := []string{}
	var known T
	for _, n := range names {
		known |= n.bit
		if v&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	if v&^known != 0 {
		return nil, fmt.Errorf("unknown bits %#x", v&^known)
	}
	return out, nil
}

func parseBits[T uint8 | uint32](ss []string, names []struct {
	bit  T
	name string
}) (T, error) {
	var v T
	for _, s := range ss {
		i := slices.IndexFunc(names, func(n struct {
			bit  T
			name string
		}) bool {
			return n.name == s
		})
		if i < 0 {
			return 0, fmt.Errorf("unknown flag %q", s)
		}
		v |= names[i].bit
	}
	return v, nil
}

func marshalExpr(x Expr) (json.RawMessage, error) {
	if isNil(x) {
		return nil, errors.New("nil expression")
	}
	var v any
	switch x := x.(type) {
	case *IfName:
		v = jsonIfName{"ifname", x.In, x.Name}
	case *NfProto:
		v = jsonNfProto{"nfproto", x.V6}
	case *L4Proto:
		v = jsonL4Proto{"l4proto", x.Proto}
	case *Addr:
		dir, err := nameOf(dirs, x.Dir, "direction")
		if err != nil {
			return nil, err
		}
		v = jsonAddr{"addr", dir, x.V6, x.Prefixes, x.Set, x.Negate}
	case *Port:
		dir, err := nameOf(dirs, x.Dir, "direction")
		if err != nil {
			return nil, err
		}
		v = jsonPort{"port", dir, x.Proto, rangesText(x.Ranges), x.Set}
	case *CtState:
		states, err := bitNames(x.States, ctStateNames)
		if err != nil {
			return nil, fmt.Errorf("ct state: %w", err)
		}
		v = jsonCtState{"ct_state", states, x.Negate}
	case *TCPFlags:
		mask, _ := bitNames(x.Mask, tcpFlagNames)
		value, _ := bitNames(x.Value, tcpFlagNames)
		v = jsonTCPFlags{"tcp_flags", mask, value, x.Negate}
	case *ICMPType:
		var types []int
		if x.Types != nil {
			types = make([]int, len(x.Types))
			for i, t := range x.Types {
				types[i] = int(t)
			}
		}
		v = jsonICMPType{"icmp_type", x.V6, types}
	case *Limit:
		v = jsonLimit{"limit", x.Rate, x.Unit.String(), x.Burst, x.Over}
	case *Meter:
		var stmt json.RawMessage = []byte("null")
		if !isNil(x.Stmt) {
			var err error
			if stmt, err = marshalExpr(x.Stmt); err != nil {
				return nil, fmt.Errorf("meter: %w", err)
			}
		}
		v = jsonMeter{"meter", x.Set, x.V6, x.PrefixLen, stmt}
	case *CtCount:
		v = jsonCtCount{"ct_count", x.N, x.Over}
	case *SetAdd:
		j := jsonSetAdd{Type: "set_add", Set: x.Set, V6: x.V6}
		if x.Timeout > 0 {
			j.Timeout = x.Timeout.String()
		}
		v = j
	case *Counter:
		v = jsonCounter{"counter"}
	case *FibLocal:
		v = jsonCounter{"fib_local"}
	case *RPFilter:
		v = jsonRPFilter{"rp_filter", x.Strict}
	case *CtMark:
		v = jsonCtBits{"ct_mark", x.Mask, x.Value}
	case *CtMarkSet:
		v = jsonCtBits{"ct_mark_set", 0, x.Bits}
	case *CtStatus:
		v = jsonCtBits{"ct_status", 0, x.Bits}
	case *DNAT:
		v = jsonDNAT{"dnat", x.Addr, x.Port}
	case *Log:
		v = jsonLog{"log", x.Prefix, x.Level, x.Group}
	case *Verdict:
		kind, err := nameOf(verdictKinds, x.Kind, "verdict")
		if err != nil {
			return nil, err
		}
		v = jsonVerdict{"verdict", kind, x.Chain}
	default:
		return nil, fmt.Errorf("unknown expression %T", x)
	}
	return json.Marshal(v)
}

func unmarshalExpr(raw json.RawMessage) (Expr, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, err
	}
	switch head.Type {
	case "ifname":
		var j jsonIfName
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		return &IfName{In: j.In, Name: j.Name}, nil
	case "nfproto":
		var j jsonNfProto
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		return &NfProto{V6: j.V6}, nil
	case "l4proto":
		var j jsonL4Proto
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		return &L4Proto{Proto: j.Proto}, nil
	case "addr":
		var j jsonAddr
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		dir, err := parseName(dirs, j.Dir, "direction")
		if err != nil {
			return nil, err
		}
		return &Addr{Dir: dir, V6: j.V6, Prefixes: j.Prefixes, Set: j.Set, Negate: j.Negate}, nil
	case "port":
		var j jsonPort
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		dir, err := parseName(dirs, j.Dir, "direction")
		if err != nil {
			return nil, err
		}
		ranges, err := parseRanges(j.Ranges)
		if err != nil {
			return nil, err
		}
		return &Port{Dir: dir, Proto: j.Proto, Ranges: ranges, Set: j.Set}, nil
	case "ct_state":
		var j jsonCtState
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		states, err := parseBits(j.States, ctStateNames)
		if err != nil {
			return nil, fmt.Errorf("ct state: %w", err)
		}
		return &CtState{States: states, Negate: j.Negate}, nil
	case "tcp_flags":
		var j jsonTCPFlags
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		mask, err := parseBits(j.Mask, tcpFlagNames)
		if err != nil {
			return nil, fmt.Errorf("tcp flags: %w", err)
		}
		value, err := parseBits(j.Value, tcpFlagNames)
		if err != nil {
			return nil, fmt.Errorf("tcp flags: %w", err)
		}
		return &TCPFlags{Mask: mask, Value: value, Negate: j.Negate}, nil
	case "icmp_type":
		var j jsonICMPType
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		var types []uint8
		if j.Types != nil {
			types = make([]uint8, len(j.Types))
			for i, t := range j.Types {
				if t < 0 || t > 255 {
					return nil, fmt.Errorf("icmp type %d out of range", t)
				}
				types[i] = uint8(t)
			}
		}
		return &ICMPType{V6: j.V6, Types: types}, nil
	case "limit":
		var j jsonLimit
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		unit, err := time.ParseDuration(j.Unit)
		if err != nil {
			return nil, err
		}
		return &Limit{Rate: j.Rate, Unit: unit, Burst: j.Burst, Over: j.Over}, nil
	case "meter":
		var j jsonMeter
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		m := &Meter{Set: j.Set, V6: j.V6, PrefixLen: j.PrefixLen}
		if len(j.Stmt) > 0 && string(j.Stmt) != "null" {
			stmt, err := unmarshalExpr(j.Stmt)
			if err != nil {
				return nil, fmt.Errorf("meter: %w", err)
			}
			m.Stmt = stmt
		}
		return m, nil
	case "set_add":
		var j jsonSetAdd
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		a := &SetAdd{Set: j.Set, V6: j.V6}
		if j.Timeout != "" {
			d, err := time.ParseDuration(j.Timeout)
			if err != nil {
				return nil, err
			}
			a.Timeout = d
		}
		return a, nil
	case "ct_count":
		var j jsonCtCount
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		return &CtCount{N: j.N, Over: j.Over}, nil
	case "counter":
		var j jsonCounter
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		return &Counter{}, nil
	case "fib_local":
		var j jsonCounter
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		return &FibLocal{}, nil
	case "rp_filter":
		var j jsonRPFilter
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		return &RPFilter{Strict: j.Strict}, nil
	case "ct_mark", "ct_mark_set", "ct_status":
		var j jsonCtBits
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		switch {
		case head.Type == "ct_mark":
			return &CtMark{Mask: j.Mask, Value: j.Value}, nil
		case j.Mask != 0:
			return nil, fmt.Errorf("%s takes no mask", head.Type)
		case head.Type == "ct_mark_set":
			return &CtMarkSet{Bits: j.Value}, nil
		}
		return &CtStatus{Bits: j.Value}, nil
	case "dnat":
		var j jsonDNAT
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		return &DNAT{Addr: j.Addr, Port: j.Port}, nil
	case "log":
		var j jsonLog
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		return &Log{Prefix: j.Prefix, Level: j.Level, Group: j.Group}, nil
	case "verdict":
		var j jsonVerdict
		if err := strictUnmarshal(raw, &j); err != nil {
			return nil, err
		}
		kind, err := parseName(verdictKinds, j.Kind, "verdict")
		if err != nil {
			return nil, err
		}
		return &Verdict{Kind: kind, Chain: j.Chain}, nil
	}
	return nil, fmt.Errorf("unknown expression type %q", head.Type)
}
