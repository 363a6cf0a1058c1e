package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Policy is a complete, validated firewall policy. Every name in it has been
// resolved: networks to prefixes, application profiles to ports.
type Policy struct {
	Table    string // nftables table name (family inet); "moat" by default
	Priority int    // base chain priority relative to "filter"

	Incoming Action // default for traffic to this host: Allow, Deny or Reject
	Outgoing Action // default for traffic from this host
	Routed   Action // default for forwarded traffic

	Networks map[string][]netip.Prefix
	Guards   Guards
	Logging  Logging
	Limit    LimitDefaults
	SSHPorts []uint16 // ports the lockout guard treats as SSH

	// Allowlist is the configured never-ban set ([bans] allowlist); the
	// kernel's allow sets hold it (plus loopback, link-local and
	// multicast), so that rules that ban from the packet path obey it too.
	Allowlist []netip.Prefix
	Scan      ScanGuard
	Honeypot  Honeypot
	Redirects []Redirect

	Rules []Rule
}

// Redirect sends new connections to a real service port from hostile
// sources to a honeypot instead: from banned sources (which would
// otherwise be dropped), or from every source in (or, with Except,
// outside) From. The target is a port on the address the connection was
// sent to (LocalPort), or a honeypot host per family (To4, To6); a source
// of a family without a target is not redirected. Allowlisted sources are
// never redirected.
type Redirect struct {
	Proto     Proto // ProtoTCP or ProtoUDP
	Port      uint16
	Banned    bool
	From      Endpoint
	Except    bool
	LocalPort uint16
	To4, To6  netip.AddrPort
	Origin    Origin
}

// Target returns where the redirect sends a connection of family v6: an
// address (invalid for a port on this host) and a port; ok is false when
// it has no target in that family.
func (r *Redirect) Target(v6 bool) (addr netip.Addr, port uint16, ok bool) {
	if r.LocalPort != 0 {
		return netip.Addr{}, r.LocalPort, true
	}
	to := r.To4
	if v6 {
		to = r.To6
	}
	return to.Addr(), to.Port(), to.IsValid()
}

// Summary describes the redirect in one line.
func (r *Redirect) Summary() string {
	from := "banned sources"
	if !r.Banned {
		from = "sources in " + r.From.Text
		if r.Except {
			from = "sources outside " + r.From.Text
		}
	}
	var to []string
	if r.LocalPort != 0 {
		to = append(to, "port "+strconv.Itoa(int(r.LocalPort)))
	}
	for _, t := range []netip.AddrPort{r.To4, r.To6} {
		if t.IsValid() {
			to = append(to, t.String())
		}
	}
	return fmt.Sprintf("%s/%d from %s to %s", r.Proto, r.Port, from, strings.Join(to, " and "))
}

// ScanGuard blocks scanners in the kernel: a source whose dropped probes
// go over Rate is blocked for BlockTime, before the daemon has even read
// the first one. Allowlisted sources are never blocked.
type ScanGuard struct {
	Block     bool
	Rate      Rate          // e.g. 5/second: a burst of 5 dropped probes, then blocked
	BlockTime time.Duration // how long a kernel block lasts (short: probes can be spoofed)
	Size      uint32        // at most this many sources blocked at once

	// Hold lists TCP ports where the first SYN of a new source is
	// dropped: a real client sends it again after its retransmission
	// timeout, later than HoldWindow, and then passes (for HoldPass); a
	// scanner's first burst is dropped whole, and the scan block stops
	// it before it tries again.
	Hold       []uint16
	HoldWindow time.Duration
	HoldPass   time.Duration
}

// Honeypot is the trap ports: a completed TCP handshake on one bans the
// source in the kernel; UDP datagrams are only logged (their source can be
// forged).
type Honeypot struct {
	TCP, UDP []uint16
	BanTime  time.Duration
}

// Action is what a rule or default does with a packet.
type Action int

const (
	Allow Action = iota
	Deny
	Reject
	Limit // allow, but drop new connections from a source above its rate
)

var actionNames = [...]string{"allow", "deny", "reject", "limit"}

func (a Action) String() string {
	if uint(a) < uint(len(actionNames)) {
		return actionNames[a]
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// ParseAction reads allow, deny, reject or limit.
func ParseAction(s string) (Action, error) {
	for i, n := range actionNames {
		if s == n {
			return Action(i), nil
		}
	}
	return 0, fmt.Errorf("unknown action %q (want allow, deny, reject or limit)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Direction is the path a packet takes relative to this host.
type Direction int

const (
	In     Direction = iota // to this host (input hook)
	Out                     // from this host (output hook)
	Routed                  // through this host (forward hook)
)

var directionNames = [...]string{"in", "out", "routed"}

func (d Direction) String() string {
	if uint(d) < uint(len(directionNames)) {
		return directionNames[d]
	}
	return "direction(" + strconv.Itoa(int(d)) + ")"
}

// ParseDirection reads in, out or routed ("incoming", "outgoing", "route"
// and "forward" are accepted too).
func ParseDirection(s string) (Direction, error) {
	switch s {
	case "in", "incoming":
		return In, nil
	case "out", "outgoing":
		return Out, nil
	case "routed", "route", "forward":
		return Routed, nil
	}
	return 0, fmt.Errorf("unknown direction %q (want in, out or routed)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (d Direction) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Direction) UnmarshalText(b []byte) error {
	v, err := ParseDirection(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Proto is the layer-4 protocol a rule matches.
type Proto string

const (
	ProtoAny    Proto = ""
	ProtoTCP    Proto = "tcp"
	ProtoUDP    Proto = "udp"
	ProtoICMP   Proto = "icmp"
	ProtoICMPv6 Proto = "icmpv6"
)

// ParseProto reads any, tcp, udp, icmp or icmpv6.
func ParseProto(s string) (Proto, error) {
	switch s {
	case "", "any":
		return ProtoAny, nil
	case "tcp", "udp", "icmp", "icmpv6":
		return Proto(s), nil
	case "ipv6-icmp":
		return ProtoICMPv6, nil
	}
	return "", fmt.Errorf("unknown protocol %q (want tcp, udp, icmp, icmpv6 or any)", s)
}

// PortRange is an inclusive range of ports; a single port has First == Last.
type PortRange struct{ First, Last uint16 }

func (r PortRange) String() string {
	if r.First == r.Last {
		return strconv.Itoa(int(r.First))
	}
	return strconv.Itoa(int(r.First)) + ":" + strconv.Itoa(int(r.Last))
}

// Contains reports whether port p is in the range.
func (r PortRange) Contains(p uint16) bool { return p >= r.First && p <= r.Last }

// Ports is a list of port ranges; empty means any port.
type Ports []PortRange

func (ps Ports) String() string {
	s := make([]string, len(ps))
	for i, r := range ps {
		s[i] = r.String()
	}
	return strings.Join(s, ",")
}

// Contains reports whether p is in the list (an empty list matches any port).
func (ps Ports) Contains(p uint16) bool {
	if len(ps) == 0 {
		return true
	}
	for _, r := range ps {
		if r.Contains(p) {
			return true
		}
	}
	return false
}

// ParsePorts reads "22", "80,443", "8000:8100" (or "8000-8100") and mixtures.
func ParsePorts(s string) (Ports, error) {
	if s == "" {
		return nil, fmt.Errorf("empty port list")
	}
	var out Ports
	for _, f := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(f, ":")
		if !isRange {
			lo, hi, isRange = strings.Cut(f, "-")
		}
		a, err := parsePort(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = parsePort(hi); err != nil {
				return nil, err
			}
			if b < a {
				return nil, fmt.Errorf("port range %q: %d is greater than %d", f, a, b)
			}
		}
		out = append(out, PortRange{a, b})
	}
	if len(out) > 15 {
		// UFW's (and iptables multiport's) limit; keeps rules readable.
		return nil, fmt.Errorf("port list %q has %d entries, at most 15 allowed", s, len(out))
	}
	return out, nil
}

func parsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("invalid port %q", s)
		}
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d out of range 1-65535", n)
	}
	return uint16(n), nil
}

// Endpoint is one side of a rule: addresses (empty = any) and ports (empty =
// any). Text is the address as the admin wrote it ("any", "admins",
// "10.0.0.0/8").
type Endpoint struct {
	Text     string
	Prefixes []netip.Prefix
	Ports    Ports
}

// Any reports whether the endpoint matches every address.
func (e Endpoint) Any() bool { return len(e.Prefixes) == 0 }

// Families reports whether the endpoint has IPv4 and IPv6 prefixes (both
// true when it matches any address).
func (e Endpoint) Families() (v4, v6 bool) {
	if e.Any() {
		return true, true
	}
	for _, p := range e.Prefixes {
		if p.Addr().Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4, v6
}

// Service is a protocol with ports, one leg of an application profile.
type Service struct {
	Proto Proto // ProtoTCP or ProtoUDP (or ProtoAny: both)
	Ports Ports
}

// Rule is one ordered policy rule. For an application rule App names the
// profile and Services holds its ports (the destination ports of the rule).
type Rule struct {
	Action    Action
	Direction Direction
	InIface   string // "in on IFACE" (in and routed)
	OutIface  string // "out on IFACE" (out and routed)
	Proto     Proto
	From, To  Endpoint
	App       string
	Services  []Service
	Comment   string
	Rate      Rate   // for Limit: the per-source rate (zero: the policy default)
	ConnLimit uint32 // cap on concurrent connections per source; 0 = none
	Log       bool   // log packets this rule matches (new connections)

	Origin Origin
}

// Origin says where a rule was written.
type Origin struct {
	File    string
	Line    int
	Managed bool // in the CLI-managed rules file
}

// Rate is count events per period, e.g. 6/30s.
type Rate struct {
	Count uint32
	Per   time.Duration
}

// IsZero reports whether the rate is unset.
func (r Rate) IsZero() bool { return r.Count == 0 }

func (r Rate) String() string {
	if r.IsZero() {
		return ""
	}
	switch r.Per {
	case time.Second:
		return fmt.Sprintf("%d/second", r.Count)
	case time.Minute:
		return fmt.Sprintf("%d/minute", r.Count)
	case time.Hour:
		return fmt.Sprintf("%d/hour", r.Count)
	case 24 * time.Hour:
		return fmt.Sprintf("%d/day", r.Count)
	}
	return fmt.Sprintf("%d/%s", r.Count, shortDuration(r.Per))
}

func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}

// ParseRate reads "6/30s", "10/minute", "5/second", "100/1m".
func ParseRate(s string) (Rate, error) {
	cs, ps, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want COUNT/PERIOD, e.g. 6/30s or 10/minute", s)
	}
	n, err := strconv.ParseUint(cs, 10, 32)
	if err != nil || n == 0 {
		return Rate{}, fmt.Errorf("rate %q: count must be a positive integer", s)
	}
	var per time.Duration
	switch ps {
	case "second", "sec", "s":
		per = time.Second
	case "minute", "min", "m":
		per = time.Minute
	case "hour", "h":
		per = time.Hour
	case "day", "d":
		per = 24 * time.Hour
	default:
		per, err = time.ParseDuration(ps)
		if err != nil {
			return Rate{}, fmt.Errorf("rate %q: period: %v", s, err)
		}
	}
	if per < time.Second || per > 24*time.Hour {
		return Rate{}, fmt.Errorf("rate %q: period must be between 1s and 1 day", s)
	}
	if per%time.Second != 0 {
		return Rate{}, fmt.Errorf("rate %q: period must be whole seconds", s)
	}
	return Rate{Count: uint32(n), Per: per}, nil
}

// MarshalText implements encoding.TextMarshaler.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler. The empty string is
// the zero rate (off), so that MarshalText round-trips.
func (r *Rate) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*r = Rate{}
		return nil
	}
	v, err := ParseRate(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Guards are the protections that come before the rules. All are on by
// default except the SYN-flood limit.
type Guards struct {
	Loopback    bool // accept all traffic on lo
	Established bool // accept established and related connections
	Invalid     bool // drop conntrack-invalid packets
	BadTCPFlags bool // drop NULL, XMAS, SYN+FIN, SYN+RST, FIN+RST, FIN without ACK, new without SYN
	ICMP        bool // accept the ICMP and ICMPv6 that networks need
	EchoRate    Rate // per-host limit on echo requests (global token bucket)
	SYNFlood    Rate // per-source limit on new TCP connections; zero = off
	// RPFilter drops incoming and routed packets whose source has no
	// route back (anti-spoofing, IPv4 and IPv6): "loose" (no route at
	// all), "strict" (not through the interface they came in on), or ""
	// (off).
	RPFilter string
}

// LogLevel is how much of what the firewall drops gets logged.
type LogLevel int

const (
	LogOff    LogLevel = iota
	LogLow             // packets dropped by the default policies
	LogMedium          // and invalid packets, bad flags, rate-limit hits, deny/reject rules
	LogHigh            // and new connections accepted by rules
)

var logLevelNames = [...]string{"off", "low", "medium", "high"}

func (l LogLevel) String() string {
	if uint(l) < uint(len(logLevelNames)) {
		return logLevelNames[l]
	}
	return "loglevel(" + strconv.Itoa(int(l)) + ")"
}

// ParseLogLevel reads off, low, medium or high ("on" means low).
func ParseLogLevel(s string) (LogLevel, error) {
	if s == "on" {
		return LogLow, nil
	}
	for i, n := range logLevelNames {
		if s == n {
			return LogLevel(i), nil
		}
	}
	return 0, fmt.Errorf("unknown logging level %q (want off, low, medium or high)", s)
}

// Logging configures drop logging. Every logged packet goes to the kernel log
// (for existing tooling, rate-limited by Rate) and to NFLOG group Group for
// the moat daemon (rate-limited by GroupRate).
type Logging struct {
	Level     LogLevel
	Rate      Rate   // kernel log rate, per reason
	Group     uint16 // NFLOG group; 0 disables NFLOG
	GroupRate Rate   // NFLOG rate, per reason
	Prefix    string // prefix of every log line, e.g. "moat"
	// ScanFeed sends the drops the scan detector needs (guards and the
	// default policy) to NFLOG whatever Level says; Level then only
	// governs the kernel log.
	ScanFeed bool
}

// LimitDefaults apply to limit rules that do not set their own values.
type LimitDefaults struct {
	Rate      Rate // default 6/30s, like UFW
	IPv6Bits  int  // IPv6 sources are counted per prefix of this length (64)
	TableSize uint32
}

// ParsePrefix reads an address or a CIDR prefix. IPv4-mapped IPv6 addresses
// become IPv4, zones are refused, and a prefix with host bits set is an error
// that names the prefix that was probably meant.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid prefix %q", s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("prefix %s has host bits set; did you mean %s?", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address %q", s)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("address %q: zones are not allowed", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
