package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// AppLookup finds application profiles for Resolve. The caller adapts its
// catalogue (internal/appprofile) to it: canonical is the profile's own
// spelling of the name and services its ports.
type AppLookup interface {
	LookupApp(name string) (canonical string, services []Service, ok bool)
}

// AppLookupFunc adapts a function to AppLookup.
type AppLookupFunc func(name string) (canonical string, services []Service, ok bool)

// LookupApp calls f.
func (f AppLookupFunc) LookupApp(name string) (string, []Service, bool) { return f(name) }

// Limits on rule values.
const (
	MaxConnLimit     = 100000
	MaxCommentLength = 100 // bytes
)

// Resolve validates a rule as written and resolves its names: networks from
// networks, applications through apps (which may be nil when no rule names
// one). Errors name the field ("from: unknown network \"admns\""); the caller
// adds where the rule was written and sets the rule's Origin.
func Resolve(s Spec, networks map[string][]netip.Prefix, apps AppLookup) (Rule, error) {
	var r Rule
	var err error

	if s.Action == "" {
		return Rule{}, errors.New("action: missing (want allow, deny, reject or limit)")
	}
	if r.Action, err = ParseAction(s.Action); err != nil {
		return Rule{}, fmt.Errorf("action: %v", err)
	}
	if s.Direction != "" {
		if r.Direction, err = ParseDirection(s.Direction); err != nil {
			return Rule{}, fmt.Errorf("direction: %v", err)
		}
	}

	if s.InIface != "" {
		if err := CheckInterface(s.InIface); err != nil {
			return Rule{}, fmt.Errorf("in_on: %v", err)
		}
		if r.Direction == Out {
			return Rule{}, fmt.Errorf(`in_on: "in on %s" is only for incoming and routed rules; an outgoing rule takes "out on"`, s.InIface)
		}
	}
	if s.OutIface != "" {
		if err := CheckInterface(s.OutIface); err != nil {
			return Rule{}, fmt.Errorf("out_on: %v", err)
		}
		if r.Direction == In {
			return Rule{}, fmt.Errorf(`out_on: "out on %s" is only for outgoing and routed rules; an incoming rule takes "in on"`, s.OutIface)
		}
	}
	r.InIface, r.OutIface = s.InIface, s.OutIface

	if r.Proto, err = ParseProto(s.Proto); err != nil {
		return Rule{}, fmt.Errorf("proto: %v", err)
	}

	if r.From, err = resolveEndpoint(s.From, networks); err != nil {
		return Rule{}, fmt.Errorf("from: %v", err)
	}
	if r.To, err = resolveEndpoint(s.To, networks); err != nil {
		return Rule{}, fmt.Errorf("to: %v", err)
	}
	fromV4, fromV6 := r.From.Families()
	toV4, toV6 := r.To.Families()
	v4, v6 := fromV4 && toV4, fromV6 && toV6
	if !v4 && !v6 {
		return Rule{}, fmt.Errorf("to: %s is %s but from %s is %s; a rule needs an address family in common",
			r.To.Text, familyName(toV4), r.From.Text, familyName(fromV4))
	}
	switch {
	case r.Proto == ProtoICMP && !v4:
		return Rule{}, errors.New("proto: icmp is IPv4 only but the rule's addresses are IPv6; use icmpv6")
	case r.Proto == ProtoICMPv6 && !v6:
		return Rule{}, errors.New("proto: icmpv6 is IPv6 only but the rule's addresses are IPv4; use icmp")
	}

	portsOK := func(field string) error {
		switch r.Proto {
		case ProtoAny, ProtoTCP, ProtoUDP:
			return nil
		}
		return fmt.Errorf("%s: ports need proto tcp or udp (or none, for both), not %s", field, r.Proto)
	}
	if s.FromPort != "" {
		if err := portsOK("from_port"); err != nil {
			return Rule{}, err
		}
		if r.From.Ports, err = ParsePorts(s.FromPort); err != nil {
			return Rule{}, fmt.Errorf("from_port: %v", err)
		}
	}
	if s.Port != "" {
		if s.App != "" {
			return Rule{}, fmt.Errorf("app: %q and port %s cannot both be given; the application names its ports", s.App, s.Port)
		}
		if err := portsOK("port"); err != nil {
			return Rule{}, err
		}
		if r.To.Ports, err = ParsePorts(s.Port); err != nil {
			return Rule{}, fmt.Errorf("port: %v", err)
		}
	}
	if s.App != "" {
		if r.App, r.Services, err = resolveApp(s.App, r.Proto, apps); err != nil {
			return Rule{}, fmt.Errorf("app: %v", err)
		}
	}

	if s.Rate != "" {
		if r.Action != Limit {
			return Rule{}, fmt.Errorf("rate: only limit rules take a rate, not %s rules", r.Action)
		}
		if r.Rate, err = ParseRate(s.Rate); err != nil {
			return Rule{}, fmt.Errorf("rate: %v", err)
		}
	}
	if s.ConnLimit > MaxConnLimit {
		return Rule{}, fmt.Errorf("conn_limit: %d is out of range 1-%d", s.ConnLimit, MaxConnLimit)
	}
	r.ConnLimit = s.ConnLimit
	if err := CheckComment(s.Comment); err != nil {
		return Rule{}, fmt.Errorf("comment: %v", err)
	}
	r.Comment = s.Comment
	r.Log = s.Log
	return r, nil
}

func familyName(v4 bool) string {
	if v4 {
		return "IPv4 only"
	}
	return "IPv6 only"
}

// resolveEndpoint resolves an address as written: "" or "any", an IP
// address, a CIDR or a network name.
func resolveEndpoint(text string, networks map[string][]netip.Prefix) (Endpoint, error) {
	if text == "" || text == "any" {
		return Endpoint{Text: "any"}, nil
	}
	e := Endpoint{Text: text}
	if !strings.ContainsAny(text, ".:/%") {
		if err := CheckNetworkName(text); err != nil {
			return Endpoint{}, err
		}
		ps, ok := networks[text]
		if !ok {
			return Endpoint{}, unknownNetwork(text, networks)
		}
		if len(ps) == 0 {
			// An empty list would make the rule match any address.
			return Endpoint{}, fmt.Errorf("network %q has no addresses", text)
		}
		e.Prefixes = make([]netip.Prefix, 0, len(ps))
		for _, p := range ps {
			if !p.IsValid() {
				return Endpoint{}, fmt.Errorf("network %q has an invalid prefix", text)
			}
			e.Prefixes = append(e.Prefixes, unmapPrefix(p).Masked())
		}
		return e, nil
	}
	p, err := ParseRulePrefix(text)
	if err != nil {
		return Endpoint{}, err
	}
	e.Prefixes = []netip.Prefix{p}
	return e, nil
}

// ParseRulePrefix reads an IP address (as a single-address prefix) or a CIDR
// for use in a rule. Zones are refused, IPv4-mapped IPv6 addresses become
// IPv4, and a CIDR must not have host bits set.
func ParseRulePrefix(s string) (netip.Prefix, error) {
	addrText, _, isPrefix := strings.Cut(s, "/")
	a, err := netip.ParseAddr(addrText)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address %q: %s", s, unquoteNetipErr(err))
	}
	if z := a.Zone(); z != "" {
		return netip.Prefix{}, fmt.Errorf("%q: an address in a rule cannot have a zone (%%%s); use \"in on %s\" to match the interface", s, z, z)
	}
	if !isPrefix {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid network %q: %s", s, unquoteNetipErr(err))
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%s has host bits set; did you mean %s?", s, unmapPrefix(m))
	}
	return unmapPrefix(p), nil
}

// unmapPrefix turns ::ffff:a.b.c.d/N (N >= 96) into a.b.c.d/(N-96).
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

func unknownNetwork(name string, networks map[string][]netip.Prefix) error {
	best, bestD := "", 3 // suggest names at most 2 edits away
	for n := range networks {
		d := editDistance(strings.ToLower(name), strings.ToLower(n))
		if d < bestD || d == bestD && n < best {
			best, bestD = n, d
		}
	}
	if best != "" {
		return fmt.Errorf("unknown network %q (did you mean %q?)", name, best)
	}
	if len(networks) == 0 {
		return fmt.Errorf("unknown network %q (no networks are defined)", name)
	}
	names := make([]string, 0, len(networks))
	for n := range networks {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) > 8 {
		names = append(names[:8], "...")
	}
	return fmt.Errorf("unknown network %q (defined: %s)", name, strings.Join(names, ", "))
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			c = min(c, prev[j]+1, cur[j-1]+1)
			cur[j] = c
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// resolveApp looks the application up and returns its canonical name and
// services, keeping only proto's when a protocol is given.
func resolveApp(name string, proto Proto, apps AppLookup) (string, []Service, error) {
	if apps == nil {
		return "", nil, fmt.Errorf("unknown application %q (no application profiles are available)", name)
	}
	canon, svcs, ok := apps.LookupApp(name)
	if !ok {
		return "", nil, fmt.Errorf("unknown application %q", name)
	}
	if canon == "" {
		canon = name
	}
	if len(svcs) == 0 {
		return "", nil, fmt.Errorf("application %q has no ports", canon)
	}
	var out []Service
	for _, sv := range svcs {
		switch sv.Proto {
		case ProtoAny, ProtoTCP, ProtoUDP:
		default:
			return "", nil, fmt.Errorf("application %q: service protocol %q is not tcp or udp", canon, sv.Proto)
		}
		if len(sv.Ports) == 0 {
			return "", nil, fmt.Errorf("application %q has a service without ports", canon)
		}
		for _, pr := range sv.Ports {
			if pr.First == 0 || pr.Last < pr.First {
				return "", nil, fmt.Errorf("application %q has an invalid port range %d:%d", canon, pr.First, pr.Last)
			}
		}
		switch {
		case proto == ProtoAny:
		case proto != ProtoTCP && proto != ProtoUDP:
			continue
		case sv.Proto == ProtoAny:
			sv.Proto = proto
		case sv.Proto != proto:
			continue
		}
		out = append(out, Service{Proto: sv.Proto, Ports: append(Ports(nil), sv.Ports...)})
	}
	if len(out) == 0 {
		return "", nil, fmt.Errorf("application %q has no %s ports", canon, proto)
	}
	return canon, out, nil
}

// CheckComment reports whether s can be a rule comment: at most 100 bytes
// of printable UTF-8 with no double quote or backslash.
func CheckComment(s string) error {
	if len(s) > MaxCommentLength {
		return fmt.Errorf("%d bytes long, at most %d allowed", len(s), MaxCommentLength)
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, c := range s {
		switch {
		case c == '"':
			return errors.New(`cannot contain a double quote (")`)
		case c == '\\':
			return errors.New(`cannot contain a backslash (\)`)
		case !unicode.IsPrint(c):
			return fmt.Errorf("cannot contain the control or non-printing character %U", c)
		}
	}
	return nil
}
