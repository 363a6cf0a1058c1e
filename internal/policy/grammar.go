package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The rule grammar is UFW's:
//
//	[route] ACTION [in|out|routed] [on IFACE] [log] [SPEC] [rate R] [conn_limit N] [comment TEXT...]
//
// where ACTION is allow, deny, reject or limit and SPEC is either the simple
// form PORT[/PROTO] or APP[/PROTO], or the full form, whose clauses may come
// in any order:
//
//	proto PROTO
//	from ADDR [port PORTS]
//	to ADDR [port PORTS | app APP]
//
// A routed rule ("route allow ..." or "allow routed ...") may name both
// interfaces: "in on IFACE" and "out on IFACE". rate and conn_limit may come
// in either order; comment takes the rest of the words.

// keywords cannot be application names, network names or interface names in
// the positions where the grammar expects those.
var keywords = map[string]bool{
	"route": true, "routed": true, "in": true, "out": true, "on": true,
	"log": true, "proto": true, "from": true, "to": true, "port": true,
	"app": true, "rate": true, "conn_limit": true, "comment": true,
	"any": true,
}

// Parse phases: each part of the grammar may only follow the earlier ones.
const (
	phaseHeader = iota // direction and interfaces
	phaseLog           // log
	phaseSpec          // simple form or full-form clauses
	phaseOpts          // rate, conn_limit
)

type argParser struct {
	args  []string
	i     int
	cmd   string // "moat allow", for errors
	prev  string // the last word consumed, for errors
	phase int
}

func (p *argParser) errorf(format string, a ...any) error {
	return fmt.Errorf(p.cmd+": "+format, a...)
}

func (p *argParser) peek() (string, bool) {
	if p.i >= len(p.args) {
		return "", false
	}
	return p.args[p.i], true
}

func (p *argParser) next() (string, bool) {
	w, ok := p.peek()
	if ok {
		p.i++
		p.prev = w
	}
	return w, ok
}

// value consumes the word that must follow keyword kw. Keywords are refused
// (so "to port 22" reports the missing address), except "any" where it means
// any address or protocol.
func (p *argParser) value(kw, what string) (string, error) {
	w, ok := p.peek()
	if !ok {
		return "", p.errorf("%q needs %s", kw, what)
	}
	anyOK := w == "any" && (kw == "from" || kw == "to" || kw == "proto")
	if keywords[w] && !anyOK {
		return "", p.errorf("%q needs %s, not the keyword %q", kw, what, w)
	}
	p.next()
	return w, nil
}

func (p *argParser) unexpected(w, hint string) error {
	msg := fmt.Sprintf("unexpected word %q after %q", w, p.prev)
	if hint != "" {
		msg += " (" + hint + ")"
	}
	return p.errorf("%s", msg)
}

// ParseArgs reads a rule from the words after `moat`: the action first
// ("allow 22/tcp", "deny from 10.0.0.0/8 to any port 25", "route allow in on
// eth0 out on eth1"). It checks syntax only; names (networks, applications)
// are resolved by Resolve. "any" addresses are stored as "" and direction in
// as "".
func ParseArgs(args []string) (Spec, error) {
	var s Spec
	if len(args) == 0 {
		return s, fmt.Errorf("moat: missing action (want allow, deny, reject or limit)")
	}
	p := &argParser{args: args, cmd: "moat"}
	routed := false
	if args[0] == "route" {
		routed = true
		p.next()
		p.cmd = "moat route"
	}
	act, ok := p.next()
	if !ok {
		return s, p.errorf("missing action (want allow, deny, reject or limit)")
	}
	if _, err := ParseAction(act); err != nil {
		return s, p.errorf("%v", err)
	}
	s.Action = act
	p.cmd += " " + act
	if routed {
		s.Direction = "routed"
	} else if len(args) == 1 {
		return s, p.errorf(`missing rule; e.g. "moat %s 22/tcp", "moat %s from 10.0.0.0/8", or "moat %s in" for all incoming traffic`, act, act, act)
	}

	dirGiven := routed // a direction word (or "route") was given
	ifaceGiven := false
	simple, full := false, false
	seen := map[string]bool{}
	once := func(kw string) error {
		if seen[kw] {
			return p.errorf("%q given twice", kw)
		}
		seen[kw] = true
		return nil
	}

	for {
		w, ok := p.peek()
		if !ok {
			return s, nil
		}
		switch w {
		case "route":
			p.next()
			return s, p.errorf(`"route" must come first: "moat route %s ..." (or say "moat %s routed ...")`, act, act)

		case "routed":
			if routed {
				if args[0] == "route" {
					return s, p.errorf(`"routed" repeats "route"`)
				}
				return s, p.errorf(`"routed" given twice`)
			}
			if p.phase > phaseHeader || dirGiven || ifaceGiven {
				return s, p.unexpected(w, "the direction comes right after the action")
			}
			p.next()
			routed, dirGiven = true, true
			s.Direction = "routed"

		case "in", "out":
			if p.phase > phaseHeader {
				return s, p.unexpected(w, "direction and interfaces come right after the action")
			}
			if !routed && ifaceGiven {
				return s, p.unexpected(w, "say the direction before \"on\"")
			}
			p.next()
			if routed {
				// "in on IFACE" / "out on IFACE" name the two sides of a routed rule.
				if on, _ := p.peek(); on != "on" {
					return s, p.errorf(`in a routed rule %q must be followed by "on IFACE"`, w)
				}
				p.next()
				if err := once(w + " on"); err != nil {
					return s, err
				}
				ifc, err := p.iface()
				if err != nil {
					return s, err
				}
				if w == "in" {
					s.InIface = ifc
				} else {
					s.OutIface = ifc
				}
				ifaceGiven = true
				continue
			}
			if dirGiven {
				if (w == "out") == (s.Direction == "out") {
					return s, p.errorf("%q given twice", w)
				}
				return s, p.errorf(`%q conflicts with the direction given before; use "moat route %s in on IFACE out on IFACE" for forwarded traffic`, w, act)
			}
			dirGiven = true
			if w == "out" {
				s.Direction = "out"
			}
			if on, _ := p.peek(); on == "on" {
				p.next()
				if err := p.onIface(&s); err != nil {
					return s, err
				}
				ifaceGiven = true
			}

		case "on":
			if p.phase > phaseHeader {
				return s, p.unexpected(w, "interfaces come right after the action")
			}
			p.next()
			if routed {
				return s, p.errorf(`in a routed rule say "in on IFACE" or "out on IFACE"`)
			}
			if ifaceGiven {
				return s, p.errorf(`"on" given twice`)
			}
			if err := p.onIface(&s); err != nil {
				return s, err
			}
			ifaceGiven = true

		case "log":
			if p.phase > phaseLog {
				return s, p.unexpected(w, `"log" goes before the port or addresses, e.g. "moat allow log 22/tcp"`)
			}
			p.next()
			if err := once(w); err != nil {
				return s, err
			}
			s.Log = true
			p.phase = phaseLog

		case "proto", "from", "to":
			if simple {
				return s, p.unexpected(w, "with from/to, say "+strconv.Quote(fullFormDest(s))+" instead")
			}
			if p.phase > phaseSpec {
				return s, p.unexpected(w, "rate, conn_limit and comment go last")
			}
			p.next()
			if err := once(w); err != nil {
				return s, err
			}
			full = true
			p.phase = phaseSpec
			var err error
			switch w {
			case "proto":
				err = p.proto(&s.Proto, "proto")
			case "from":
				err = p.endpoint(w, &s.From, &s.FromPort, nil)
			case "to":
				err = p.endpoint(w, &s.To, &s.Port, &s.App)
			}
			if err != nil {
				return s, err
			}

		case "port":
			return s, p.errorf(`"port" must follow "from ADDR" or "to ADDR", e.g. "moat %s to any port 22" (or say just "moat %s 22")`, act, act)

		case "app":
			return s, p.errorf(`"app" must follow "to ADDR", e.g. "moat %s to any app OpenSSH" (or say just "moat %s OpenSSH")`, act, act)

		case "rate", "conn_limit":
			p.next()
			if err := once(w); err != nil {
				return s, err
			}
			p.phase = phaseOpts
			v, ok := p.next()
			if !ok {
				if w == "rate" {
					return s, p.errorf(`"rate" needs a rate, e.g. 6/30s or 10/minute`)
				}
				return s, p.errorf(`"conn_limit" needs a number of connections`)
			}
			if w == "rate" {
				if _, err := ParseRate(v); err != nil {
					return s, p.errorf("%v", err)
				}
				s.Rate = v
				continue
			}
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 {
				return s, p.errorf("conn_limit %q: want a positive number of connections", v)
			}
			s.ConnLimit = uint32(n)

		case "comment":
			p.next()
			if p.i >= len(p.args) {
				return s, p.errorf(`"comment" needs text`)
			}
			s.Comment = strings.Join(p.args[p.i:], " ")
			return s, nil

		default:
			if simple || full || p.phase > phaseSpec {
				hint := ""
				if full && w != "" && w[0] >= '0' && w[0] <= '9' {
					hint = `with from/to, give ports as "to ADDR port PORT"`
				}
				return s, p.unexpected(w, hint)
			}
			p.next()
			if err := p.simpleSpec(w, &s); err != nil {
				return s, err
			}
			simple = true
			p.phase = phaseSpec
		}
	}
}

func (p *argParser) iface() (string, error) {
	w, err := p.value("on", "an interface name")
	if err != nil {
		return "", err
	}
	if err := CheckInterface(w); err != nil {
		return "", p.errorf("%v", err)
	}
	return w, nil
}

// onIface reads the interface of "on IFACE" in a non-routed rule: the
// input interface unless the direction is out.
func (p *argParser) onIface(s *Spec) error {
	ifc, err := p.iface()
	if err != nil {
		return err
	}
	if s.Direction == "out" {
		s.OutIface = ifc
	} else {
		s.InIface = ifc
	}
	return nil
}

// proto reads the word after "proto" into *dst ("any" is stored as "").
func (p *argParser) proto(dst *string, kw string) error {
	w, err := p.value(kw, "a protocol (tcp, udp, icmp, icmpv6 or any)")
	if err != nil {
		return err
	}
	if _, err := ParseProto(w); err != nil || w == "" {
		return p.errorf("unknown protocol %q (want tcp, udp, icmp, icmpv6 or any)", w)
	}
	if w == "any" {
		w = ""
	}
	*dst = w
	return nil
}

// endpoint reads "ADDR [port PORTS | app APP]" after from or to.
func (p *argParser) endpoint(kw string, addr, port, app *string) error {
	const what = "an address (any, an IP address, a CIDR or a network name)"
	w, err := p.value(kw, what)
	if err != nil {
		return err
	}
	if err := checkAddrSyntax(w); err != nil {
		return p.errorf("%s: %v", kw, err)
	}
	if w == "any" {
		w = ""
	}
	*addr = w
	switch next, _ := p.peek(); next {
	case "port":
		p.next()
		v, err := p.value("port", "a port list, e.g. 22, 80,443 or 6000:6007")
		if err != nil {
			return err
		}
		if err := checkPortsSyntax(v); err != nil {
			return p.errorf("%s port: %v", kw, err)
		}
		*port = v
	case "app":
		p.next()
		if app == nil {
			return p.errorf(`"from ... app" is not supported; give the source ports with "from ADDR port PORT", or the application on the "to" side`)
		}
		v, err := p.value("app", "an application name")
		if err != nil {
			return err
		}
		if err := checkAppName(v); err != nil {
			return p.errorf("%v", err)
		}
		*app = v
	default:
		return nil
	}
	if next, _ := p.peek(); next == "port" || next == "app" {
		return p.errorf(`%q takes one "port" or "app" clause, not both`, kw)
	}
	return nil
}

// simpleSpec reads PORT[/PROTO] or APP[/PROTO].
func (p *argParser) simpleSpec(w string, s *Spec) error {
	if w == "" {
		return p.errorf("empty word where a port or application was expected")
	}
	if _, err := netip.ParseAddr(w); err == nil {
		return p.errorf(`%q is an address, not a port; did you mean "from %s" or "to %s"?`, w, w, w)
	}
	if _, err := netip.ParsePrefix(w); err == nil {
		return p.errorf(`%q is a network, not a port; did you mean "from %s" or "to %s"?`, w, w, w)
	}
	name, proto, hasProto := strings.Cut(w, "/")
	if hasProto {
		if _, err := ParseProto(proto); err != nil || proto == "" {
			return p.errorf("%q: unknown protocol %q (want tcp, udp, icmp, icmpv6 or any)", w, proto)
		}
		if proto == "any" {
			proto = ""
		}
	}
	if name != "" && name[0] >= '0' && name[0] <= '9' {
		if err := checkPortsSyntax(name); err != nil {
			return p.errorf("%v", err)
		}
		s.Port, s.Proto = name, proto
		return nil
	}
	if keywords[name] {
		return p.errorf("%q is a keyword, not a port or application", name)
	}
	if err := checkAppName(name); err != nil {
		return p.errorf("%q is not a port, PORT/PROTO or application name", w)
	}
	s.App, s.Proto = name, proto
	return nil
}

// fullFormDest says a simple-form destination in the full form, for hints:
// "to any port 22 proto tcp".
func fullFormDest(s Spec) string {
	d := "to any port " + s.Port
	if s.App != "" {
		d = "to any app " + quoteWord(s.App)
	}
	if s.Proto != "" {
		d += " proto " + s.Proto
	}
	return d
}

func checkPortsSyntax(s string) error {
	if strings.Contains(s, "/") {
		return fmt.Errorf(`ports %q: give the protocol with "proto", e.g. "to any port 22 proto tcp"`, s)
	}
	_, err := ParsePorts(s)
	return err
}

// checkAddrSyntax accepts "any", an IP address, a CIDR or a well-formed
// network name; whether it is usable in a rule is Resolve's business.
func checkAddrSyntax(s string) error {
	if s == "any" {
		return nil
	}
	if CheckNetworkName(s) == nil {
		return nil
	}
	if strings.Contains(s, "/") {
		if _, err := netip.ParsePrefix(s); err != nil {
			return fmt.Errorf("invalid network %q: %v", s, unquoteNetipErr(err))
		}
		return nil
	}
	if _, err := netip.ParseAddr(s); err != nil {
		if strings.ContainsAny(s, ".:") {
			return fmt.Errorf("invalid address %q: %v", s, unquoteNetipErr(err))
		}
		return fmt.Errorf("%q is not an address, a CIDR or a network name", s)
	}
	return nil
}

// unquoteNetipErr drops netip's restatement of the input from its errors:
// `ParseAddr("1.2.3"): IPv4 address too short` -> `IPv4 address too short`.
func unquoteNetipErr(err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, "netip.Parse") || strings.HasPrefix(msg, "Parse") {
		if _, rest, ok := strings.Cut(msg, "): "); ok {
			return rest
		}
	}
	return msg
}

// checkAppName accepts UFW's application profile names: a letter, then
// letters, digits, spaces and _ . + -.
func checkAppName(s string) error {
	if s == "" {
		return fmt.Errorf("empty application name")
	}
	if len(s) > 64 {
		return fmt.Errorf("application name %q is too long (at most 64 characters)", s)
	}
	if keywords[s] {
		return fmt.Errorf("%q is a keyword, not an application name", s)
	}
	for i, c := range s {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case i > 0 && (c >= '0' && c <= '9' || strings.ContainsRune(" _.+-", c)):
		default:
			return fmt.Errorf("invalid application name %q (want a letter, then letters, digits, spaces, _ . + -)", s)
		}
	}
	return nil
}

// CheckInterface reports whether name is a valid interface name for a rule:
// 1 to 15 characters of A-Z a-z 0-9 _ . @ : + -.
func CheckInterface(name string) error {
	if name == "" {
		return fmt.Errorf("empty interface name")
	}
	if len(name) > 15 {
		return fmt.Errorf("interface name %q is too long (at most 15 characters)", name)
	}
	for _, c := range name {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("_.@:+-", c)) {
			return fmt.Errorf("invalid interface name %q (want letters, digits and _ . @ : + -)", name)
		}
	}
	return nil
}

// CheckNetworkName reports whether name is a valid network name: 1 to 32
// characters of A-Z a-z 0-9 _ -, and not "any".
func CheckNetworkName(name string) error {
	if name == "" {
		return fmt.Errorf("empty network name")
	}
	if len(name) > 32 {
		return fmt.Errorf("network name %q is too long (at most 32 characters)", name)
	}
	if name == "any" {
		return fmt.Errorf(`"any" is reserved and cannot name a network`)
	}
	for _, c := range name {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("invalid network name %q (want letters, digits, _ and -)", name)
		}
	}
	return nil
}

// Args returns the rule as canonical words, action first, such that
// ParseArgs(s.Args()) returns s for any s that ParseArgs returned. The
// simple form (22/tcp, OpenSSH) is used when it can say the rule.
func (s Spec) Args() []string {
	var a []string
	dir := s.Direction
	switch dir {
	case "in", "incoming":
		dir = ""
	case "outgoing":
		dir = "out"
	case "route", "forward":
		dir = "routed"
	}
	if dir == "routed" {
		a = append(a, "route")
	}
	a = append(a, s.Action)
	switch dir {
	case "routed":
	case "":
		if s.InIface != "" {
			a = append(a, "in", "on", s.InIface)
			if s.OutIface != "" {
				a = append(a, "out", "on", s.OutIface)
			}
		} else if s.OutIface != "" {
			a = append(a, "in", "out", "on", s.OutIface)
		}
	case "out":
		a = append(a, "out")
		if s.OutIface != "" {
			a = append(a, "on", s.OutIface)
		}
		if s.InIface != "" {
			a = append(a, "in", "on", s.InIface)
		}
	default:
		a = append(a, dir)
	}
	if dir == "routed" {
		if s.InIface != "" {
			a = append(a, "in", "on", s.InIface)
		}
		if s.OutIface != "" {
			a = append(a, "out", "on", s.OutIface)
		}
	}
	if s.Log {
		a = append(a, "log")
	}
	if s.From == "" && s.FromPort == "" && s.To == "" && (s.Port == "") != (s.App == "") {
		w := s.Port + s.App
		if s.Proto != "" {
			w += "/" + s.Proto
		}
		a = append(a, w)
	} else {
		if s.From != "" || s.FromPort != "" {
			a = append(a, "from", orAny(s.From))
			if s.FromPort != "" {
				a = append(a, "port", s.FromPort)
			}
		}
		if s.To != "" || s.Port != "" || s.App != "" {
			a = append(a, "to", orAny(s.To))
			if s.Port != "" {
				a = append(a, "port", s.Port)
			}
			if s.App != "" {
				a = append(a, "app", s.App)
			}
		}
		if s.Proto != "" {
			a = append(a, "proto", s.Proto)
		}
	}
	if s.Rate != "" {
		a = append(a, "rate", s.Rate)
	}
	if s.ConnLimit != 0 {
		a = append(a, "conn_limit", strconv.FormatUint(uint64(s.ConnLimit), 10))
	}
	if s.Comment != "" {
		a = append(a, "comment", s.Comment)
	}
	if len(a) == 1 {
		// A bare action is refused as a likely mistake; say "in" instead.
		a = append(a, "in")
	}
	return a
}

func orAny(s string) string {
	if s == "" {
		return "any"
	}
	return s
}

// String returns the canonical words of the rule joined by spaces, with
// words that a shell would split or interpret in single quotes, so the
// output can be pasted after `moat delete`.
func (s Spec) String() string {
	args := s.Args()
	for i, w := range args {
		args[i] = quoteWord(w)
	}
	return strings.Join(args, " ")
}

// quoteWord quotes w for a POSIX shell when needed, in single quotes; a
// single quote inside is closed, escaped with a backslash and reopened.
func quoteWord(w string) string {
	if w != "" && !strings.ContainsFunc(w, needsQuote) && utf8.ValidString(w) {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

func needsQuote(c rune) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return false
	case strings.ContainsRune("-_./:,@%+=", c):
		return false
	}
	return true
}
