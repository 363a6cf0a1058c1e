package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Finding is one problem Lint found.
type Finding struct {
	Rule     int    // index in p.Rules; -1 for the policy as a whole
	Severity string // SeverityWarning or SeverityError
	Code     string // duplicate, shadowed, never-matches, redundant, database-exposed, no-ssh
	Msg      string
}

// Finding severities.
const (
	SeverityWarning = "warning"
	SeverityError   = "error"
)

func (f Finding) String() string { return f.Severity + ": " + f.Msg + " [" + f.Code + "]" }

// Lint checks a resolved policy for rules that cannot work as intended and
// for risky openings. It reports, in this order, policy-wide findings and
// then each rule's, in rule order:
//
//   - never-matches (warning): no packet can reach the rule, e.g. an
//     incoming rule on "lo" while the loopback guard accepts lo first;
//   - duplicate (warning): an earlier rule has the same match and action;
//   - shadowed (error): an earlier rule matches every packet this one would
//     and decides differently, so this rule never takes effect;
//   - redundant (warning): an allow rule whose direction is allowed by
//     default, that no deny, reject or limit rule overlaps, and that does not
//     log or limit connections;
//   - database-exposed (warning): an incoming allow or limit rule from any
//     address to the port of a well-known database or cache;
//   - no-ssh (warning, policy): incoming traffic is denied by default and no
//     rule admits TCP to any of p.SSHPorts.
//
// Lint reports only what it can prove from single rules; it does not find a
// rule that is covered by several earlier rules together.
func Lint(p *Policy) []Finding {
	if p == nil {
		return nil
	}
	ms := make([]*matchSet, len(p.Rules))
	never := make([]string, len(p.Rules)) // why rule i never matches, or ""
	for i := range p.Rules {
		ms[i] = newMatchSet(&p.Rules[i])
		never[i] = neverMatches(p, &p.Rules[i], ms[i])
	}
	// firstContainer returns the first live rule before i that matches every
	// packet of m, or -1.
	firstContainer := func(i int, m *matchSet) int {
		for j := range i {
			if never[j] == "" && ms[j].contains(m) {
				return j
			}
		}
		return -1
	}

	var out []Finding
	if f, ok := lintSSH(p, ms, never); ok {
		out = append(out, f)
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		add := func(sev, code, format string, a ...any) {
			out = append(out, Finding{Rule: i, Severity: sev, Code: code,
				Msg: fmt.Sprintf("rule %d (%s) ", i+1, r.Summary()) + fmt.Sprintf(format, a...)})
		}
		if never[i] != "" {
			add(SeverityWarning, "never-matches", "never matches: %s", never[i])
			continue
		}
		found := false
		for j := range i {
			if never[j] == "" && p.Rules[j].Action == r.Action && ms[j].equal(ms[i]) {
				add(SeverityWarning, "duplicate", "duplicates rule %d", j+1)
				found = true
				break
			}
		}
		if j := firstContainer(i, ms[i]); j >= 0 && p.Rules[j].Action != r.Action {
			add(SeverityError, "shadowed", "never takes effect: rule %d (%s) comes first and matches all of its traffic",
				j+1, p.Rules[j].Summary())
			found = true
		}
		if !found && isRedundant(p, i, ms, never) {
			add(SeverityWarning, "redundant", "is redundant: %s traffic is allowed by default and no deny, reject or limit rule overlaps it",
				directionAdjective(r.Direction))
		}
		if exposed := exposedDatabases(r, i, ms[i], firstContainer); exposed != "" {
			where := "to the world"
			if r.InIface != "" {
				where = "to any address on " + r.InIface
			}
			add(SeverityWarning, "database-exposed", "opens %s %s; restrict it with \"from\"", exposed, where)
		}
	}
	return out
}

func directionAdjective(d Direction) string {
	switch d {
	case In:
		return "incoming"
	case Out:
		return "outgoing"
	}
	return d.String()
}

func defaultFor(p *Policy, d Direction) (Action, bool) {
	switch d {
	case In:
		return p.Incoming, true
	case Out:
		return p.Outgoing, true
	case Routed:
		return p.Routed, true
	}
	return 0, false
}

// neverMatches says why no packet can reach r, or "".
func neverMatches(p *Policy, r *Rule, m *matchSet) string {
	if p.Guards.Loopback && (r.Direction == In && r.InIface == "lo" || r.Direction == Out && r.OutIface == "lo") {
		return "the loopback guard accepts all traffic on lo before any rule"
	}
	if !m.empty() {
		return ""
	}
	fromV4, fromV6 := r.From.Families()
	toV4, toV6 := r.To.Families()
	hasPorts := len(r.From.Ports) > 0 || len(r.To.Ports) > 0 || r.App != "" || len(r.Services) > 0
	switch {
	case !(fromV4 && toV4) && !(fromV6 && toV6):
		return "its from and to addresses have no address family in common"
	case r.Proto == ProtoICMP && !(fromV4 && toV4):
		return "icmp is IPv4 only but its addresses are IPv6"
	case r.Proto == ProtoICMPv6 && !(fromV6 && toV6):
		return "icmpv6 is IPv6 only but its addresses are IPv4"
	case hasPorts && r.Proto != ProtoAny && r.Proto != ProtoTCP && r.Proto != ProtoUDP:
		return "ports need proto tcp or udp"
	case r.App != "" || len(r.Services) > 0:
		return "its application has no ports for its protocol"
	}
	return "no packet can match it"
}

// isRedundant reports whether allow rule i changes nothing: its direction's
// default is allow and no other live rule that does not allow overlaps it.
// (Only later rules could matter, but an overlapping earlier one is left
// alone too: the reader may be relying on the order.)
func isRedundant(p *Policy, i int, ms []*matchSet, never []string) bool {
	r := &p.Rules[i]
	if r.Action != Allow || r.Log || r.ConnLimit != 0 {
		return false
	}
	if def, ok := defaultFor(p, r.Direction); !ok || def != Allow {
		return false
	}
	for j := range p.Rules {
		if j != i && never[j] == "" && p.Rules[j].Action != Allow && ms[j].overlaps(ms[i]) {
			return false
		}
	}
	return true
}

// databasePorts are well-known database and cache ports. UDP is checked
// only where the service listens on it.
var databasePorts = []struct {
	port uint16
	name string
	udp  bool
}{
	{1433, "Microsoft SQL Server", false},
	{1521, "Oracle Database", false},
	{2379, "etcd", false},
	{2380, "etcd peer", false},
	{3306, "MySQL", false},
	{5432, "PostgreSQL", false},
	{5984, "CouchDB", false},
	{6379, "Redis", false},
	{7000, "Cassandra inter-node", false},
	{7001, "Cassandra inter-node TLS", false},
	{8086, "InfluxDB", false},
	{9042, "Cassandra", false},
	{9200, "Elasticsearch", false},
	{9300, "Elasticsearch transport", false},
	{11211, "Memcached", true},
	{27017, "MongoDB", false},
}

// exposedDatabases lists the databases incoming rule r admits from any
// address, as "PostgreSQL (5432/tcp)", leaving out ports an earlier rule
// decides for it; "" if none.
func exposedDatabases(r *Rule, i int, m *matchSet, firstContainer func(int, *matchSet) int) string {
	if r.Direction != In || (r.Action != Allow && r.Action != Limit) {
		return ""
	}
	world := r.From.Any()
	for _, p := range r.From.Prefixes {
		world = world || p.Bits() == 0
	}
	// A rule with no port at all opens everything; it is not about
	// databases in particular.
	if !world || len(r.To.Ports) == 0 && r.App == "" && len(r.Services) == 0 {
		return ""
	}
	var names []string
	for _, db := range databasePorts {
		var protos []string
		for _, c := range []l4class{classTCP, classUDP} {
			if c == classUDP && !db.udp {
				continue
			}
			if sub := m.restrict(c, db.port); sub != nil && firstContainer(i, sub) < 0 {
				protos = append(protos, classNames[c])
			}
		}
		if len(protos) > 0 {
			names = append(names, fmt.Sprintf("%s (%d/%s)", db.name, db.port, strings.Join(protos, "+")))
		}
	}
	return joinAnd(names)
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// lintSSH reports no-ssh: incoming traffic is denied by default and no live
// allow or limit rule admits TCP to an SSH port that an earlier deny or
// reject rule does not take entirely.
func lintSSH(p *Policy, ms []*matchSet, never []string) (Finding, bool) {
	if p.Incoming != Deny && p.Incoming != Reject || len(p.SSHPorts) == 0 {
		return Finding{}, false
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.Direction != In || never[i] != "" || r.Action != Allow && r.Action != Limit {
			continue
		}
	ports:
		for _, port := range p.SSHPorts {
			sub := ms[i].restrict(classTCP, port)
			if sub == nil {
				continue
			}
			for j := range i {
				if never[j] == "" && (p.Rules[j].Action == Deny || p.Rules[j].Action == Reject) && ms[j].contains(sub) {
					continue ports
				}
			}
			return Finding{}, false
		}
	}
	ports := make([]string, len(p.SSHPorts))
	for i, port := range p.SSHPorts {
		ports[i] = strconv.Itoa(int(port))
	}
	what := "tcp port " + ports[0]
	if len(ports) > 1 {
		what = "tcp ports " + strings.Join(ports, ", ")
	}
	verb := "denied"
	if p.Incoming == Reject {
		verb = "rejected"
	}
	return Finding{Rule: -1, Severity: SeverityWarning, Code: "no-ssh",
		Msg: fmt.Sprintf("incoming traffic is %s by default and no rule allows SSH (%s); the host would be unreachable over SSH", verb, what)}, true
}

// Summary describes the rule in a few words for messages, e.g.
// "allow in 22/tcp from admins" or "deny routed in on eth0 out on eth1".
func (r Rule) Summary() string {
	w := []string{r.Action.String(), r.Direction.String()}
	switch {
	case r.Direction == In && r.InIface != "" && r.OutIface == "":
		w = append(w, "on", r.InIface)
	case r.Direction == Out && r.OutIface != "" && r.InIface == "":
		w = append(w, "on", r.OutIface)
	default:
		if r.InIface != "" {
			w = append(w, "in on", r.InIface)
		}
		if r.OutIface != "" {
			w = append(w, "out on", r.OutIface)
		}
	}
	slash := ""
	if r.Proto != ProtoAny {
		slash = "/" + string(r.Proto)
	}
	switch {
	case r.App != "":
		w = append(w, quoteWord(r.App)+slash)
	case len(r.To.Ports) > 0:
		w = append(w, r.To.Ports.String()+slash)
	case len(r.Services) > 0:
		var s []string
		for _, sv := range r.Services {
			s = append(s, sv.Ports.String()+"/"+orAny(string(sv.Proto)))
		}
		w = append(w, strings.Join(s, " "))
	case r.Proto != ProtoAny:
		w = append(w, "proto", string(r.Proto))
	}
	if !r.From.Any() || len(r.From.Ports) > 0 {
		w = append(w, "from", endpointText(r.From))
		if len(r.From.Ports) > 0 {
			w = append(w, "port", r.From.Ports.String())
		}
	}
	if !r.To.Any() {
		w = append(w, "to", endpointText(r.To))
	}
	return strings.Join(w, " ")
}

func endpointText(e Endpoint) string {
	if e.Any() {
		return "any"
	}
	if e.Text != "" && e.Text != "any" {
		return quoteWord(e.Text)
	}
	s := make([]string, len(e.Prefixes))
	for i, p := range e.Prefixes {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// The match model: the set of packets a rule matches, as a union over
// address family and protocol class of products (source prefixes x
// destination prefixes x source ports x destination ports). Containment and
// overlap of two rules then reduce to containment and overlap of the factors.

type l4class int

const (
	classTCP l4class = iota
	classUDP
	classICMP
	classICMPv6
	classOther // every other protocol
	numClasses
)

var classNames = [numClasses]string{"tcp", "udp", "icmp", "icmpv6", "other"}

func classOf(p Proto) (l4class, bool) {
	switch p {
	case ProtoTCP:
		return classTCP, true
	case ProtoUDP:
		return classUDP, true
	case ProtoICMP:
		return classICMP, true
	case ProtoICMPv6:
		return classICMPv6, true
	}
	return classOther, false
}

// familyOK reports whether protocol class c can occur in family f (0 IPv4,
// 1 IPv6).
func familyOK(f int, c l4class) bool {
	return !(c == classICMP && f == 1 || c == classICMPv6 && f == 0)
}

// portSet is a sorted list of disjoint, non-adjacent ranges.
type portSet []PortRange

var allPorts = portSet{{0, 65535}}

func newPortSet(ps Ports) portSet {
	if len(ps) == 0 {
		return allPorts
	}
	s := slices.Clone([]PortRange(ps))
	sort.Slice(s, func(i, j int) bool { return s[i].First < s[j].First })
	out := portSet{}
	for _, r := range s {
		if r.Last < r.First {
			continue
		}
		if n := len(out); n > 0 && uint32(r.First) <= uint32(out[n-1].Last)+1 {
			out[n-1].Last = max(out[n-1].Last, r.Last)
			continue
		}
		out = append(out, r)
	}
	return out
}

func (a portSet) contains(b portSet) bool {
	for _, r := range b {
		if !slices.ContainsFunc(a, func(q PortRange) bool { return q.First <= r.First && r.Last <= q.Last }) {
			return false
		}
	}
	return true
}

func (a portSet) overlaps(b portSet) bool {
	for _, r := range a {
		for _, q := range b {
			if r.First <= q.Last && q.First <= r.Last {
				return true
			}
		}
	}
	return false
}

func (a portSet) intersect(b portSet) portSet {
	var out portSet
	for _, r := range a {
		for _, q := range b {
			lo, hi := max(r.First, q.First), min(r.Last, q.Last)
			if lo <= hi {
				out = append(out, PortRange{lo, hi})
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return newPortSet(Ports(out))
}

type l4piece struct{ src, dst portSet }

type matchSet struct {
	dir      Direction
	in, out  string
	src, dst [2][]netip.Prefix // by family; empty: no address of that family
	l4       [numClasses]*l4piece
}

var allPrefixes = [2]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

func endpointPrefixes(e Endpoint) (out [2][]netip.Prefix) {
	if e.Any() {
		return [2][]netip.Prefix{{allPrefixes[0]}, {allPrefixes[1]}}
	}
	for _, p := range e.Prefixes {
		p = unmapPrefix(p).Masked()
		f := 0
		if p.Addr().Is6() {
			f = 1
		}
		if !slices.Contains(out[f], p) {
			out[f] = append(out[f], p)
		}
	}
	return out
}

// newMatchSet models the packets r matches, as Rule.Matches decides.
func newMatchSet(r *Rule) *matchSet {
	m := &matchSet{dir: r.Direction, in: r.InIface, out: r.OutIface}
	m.src, m.dst = endpointPrefixes(r.From), endpointPrefixes(r.To)
	hasServices := r.App != "" || len(r.Services) > 0
	if !hasServices && len(r.From.Ports) == 0 && len(r.To.Ports) == 0 {
		if c, ok := classOf(r.Proto); ok {
			m.l4[c] = &l4piece{allPorts, allPorts}
		} else if r.Proto == ProtoAny {
			for c := range numClasses {
				m.l4[c] = &l4piece{allPorts, allPorts}
			}
		}
		return m
	}
	src, dst := newPortSet(r.From.Ports), newPortSet(r.To.Ports)
	for _, c := range []l4class{classTCP, classUDP} {
		if r.Proto != ProtoAny && r.Proto != Proto(classNames[c]) {
			continue
		}
		d := dst
		if hasServices {
			var ps Ports
			for _, s := range r.Services {
				if s.Proto == ProtoAny || s.Proto == Proto(classNames[c]) {
					if len(s.Ports) == 0 {
						ps = append(ps, allPorts...)
					}
					ps = append(ps, s.Ports...)
				}
			}
			if len(ps) == 0 {
				continue
			}
			d = d.intersect(newPortSet(ps))
		}
		if len(d) > 0 {
			m.l4[c] = &l4piece{src, d}
		}
	}
	return m
}

// live reports whether m matches some packet of family f (0 IPv4, 1 IPv6)
// and protocol class c.
func (m *matchSet) live(f int, c l4class) bool {
	return familyOK(f, c) && len(m.src[f]) > 0 && len(m.dst[f]) > 0 && m.l4[c] != nil
}

func (m *matchSet) empty() bool {
	for f := range 2 {
		for c := range numClasses {
			if m.live(f, c) {
				return false
			}
		}
	}
	return true
}

// contains reports whether m matches every packet n matches.
func (m *matchSet) contains(n *matchSet) bool {
	if m.dir != n.dir || m.in != "" && m.in != n.in || m.out != "" && m.out != n.out {
		return false
	}
	for f := range 2 {
		for c := range numClasses {
			if !n.live(f, c) {
				continue
			}
			if !m.live(f, c) ||
				!prefixesContain(m.src[f], n.src[f]) || !prefixesContain(m.dst[f], n.dst[f]) ||
				!m.l4[c].src.contains(n.l4[c].src) || !m.l4[c].dst.contains(n.l4[c].dst) {
				return false
			}
		}
	}
	return true
}

func (m *matchSet) equal(n *matchSet) bool { return m.contains(n) && n.contains(m) }

// overlaps reports whether some packet matches both m and n.
func (m *matchSet) overlaps(n *matchSet) bool {
	if m.dir != n.dir || m.in != "" && n.in != "" && m.in != n.in || m.out != "" && n.out != "" && m.out != n.out {
		return false
	}
	for f := range 2 {
		for c := range numClasses {
			if m.live(f, c) && n.live(f, c) &&
				prefixesOverlap(m.src[f], n.src[f]) && prefixesOverlap(m.dst[f], n.dst[f]) &&
				m.l4[c].src.overlaps(n.l4[c].src) && m.l4[c].dst.overlaps(n.l4[c].dst) {
				return true
			}
		}
	}
	return false
}

// restrict returns the part of m that is protocol class c to destination
// port port, or nil if there is none.
func (m *matchSet) restrict(c l4class, port uint16) *matchSet {
	if m.l4[c] == nil {
		return nil
	}
	d := m.l4[c].dst.intersect(portSet{{port, port}})
	if d == nil {
		return nil
	}
	n := &matchSet{dir: m.dir, in: m.in, out: m.out, src: m.src, dst: m.dst}
	n.l4[c] = &l4piece{m.l4[c].src, d}
	if n.empty() {
		return nil
	}
	return n
}

// prefixesContain reports whether the union of as covers every prefix in bs.
func prefixesContain(as, bs []netip.Prefix) bool {
	for _, b := range bs {
		if !covered(as, b) {
			return false
		}
	}
	return true
}

// covered reports whether the union of as covers b.
func covered(as []netip.Prefix, b netip.Prefix) bool {
	var inner []netip.Prefix
	for _, a := range as {
		if a.Bits() <= b.Bits() && a.Contains(b.Addr()) {
			return true
		}
		if a.Bits() > b.Bits() && b.Contains(a.Addr()) {
			inner = append(inner, a)
		}
	}
	if len(inner) == 0 {
		return false
	}
	lo, hi := halves(b)
	return covered(inner, lo) && covered(inner, hi)
}

// halves splits b into its two subnets one bit longer.
func halves(b netip.Prefix) (netip.Prefix, netip.Prefix) {
	bits := b.Bits() + 1
	lo := netip.PrefixFrom(b.Addr(), bits)
	a := b.Addr().AsSlice()
	a[b.Bits()/8] |= 0x80 >> (b.Bits() % 8)
	hiAddr, _ := netip.AddrFromSlice(a)
	return lo, netip.PrefixFrom(hiAddr, bits)
}

func prefixesOverlap(as, bs []netip.Prefix) bool {
	for _, a := range as {
		for _, b := range bs {
			if a.Overlaps(b) {
				return true
			}
		}
	}
	return false
}
