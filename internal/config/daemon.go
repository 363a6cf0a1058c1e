package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moat-sec/moat/internal/policy"
)

// DaemonFile is the [daemon] table.
type DaemonFile struct {
	Socket   string `toml:"socket"`   // default: <run dir>/moat.sock
	Database string `toml:"database"` // default: <state dir>/moat.db
}

// BansFile is the [bans] table: how findings become bans.
type BansFile struct {
	BanTime        Duration `toml:"bantime"`
	FindTime       Duration `toml:"findtime"`
	MaxRetry       int      `toml:"maxretry"`
	Multiplier     float64  `toml:"multiplier"`
	MaxBanTime     Duration `toml:"max_bantime"`
	ForgetAfter    Duration `toml:"forget_after"`
	PermanentAfter int      `toml:"permanent_after"`
	IPv6Prefix     int      `toml:"ipv6_prefix"`
	AggregateV4    string   `toml:"aggregate_v4"`
	AggregateV6    string   `toml:"aggregate_v6"`
	Allowlist      []string `toml:"allowlist"`
}

// JailFile is one [jail.NAME] table.
type JailFile struct {
	Enabled  *bool     `toml:"enabled"`
	Filter   string    `toml:"filter"`
	Mode     string    `toml:"mode"`
	LogPath  []string  `toml:"logpath"`
	Journal  []string  `toml:"journal"`
	MaxRetry int       `toml:"maxretry"`
	FindTime *Duration `toml:"findtime"`
	BanTime  *Duration `toml:"bantime"`
}

// ScanFile is the [scan] table.
type ScanFile struct {
	KernelBlock     bool     `toml:"kernel_block"`
	KernelRate      string   `toml:"kernel_rate"`
	KernelBlockTime Duration `toml:"kernel_block_time"`
	Detect          bool     `toml:"detect"`
	AutoBlock       int      `toml:"auto_block"`
	BanTime         Duration `toml:"bantime"`
	Budget          int      `toml:"budget"`
	Window          Duration `toml:"window"`
	Hold            []int    `toml:"hold"`
	HoldWindow      Duration `toml:"hold_window"`
	HoldPass        Duration `toml:"hold_pass"`
}

// HoneypotFile is the [honeypot] table.
type HoneypotFile struct {
	TCP     []int    `toml:"tcp"`
	UDP     []int    `toml:"udp"`
	BanTime Duration `toml:"bantime"`
	Listen  bool     `toml:"listen"`
	// UDPVerify makes the daemon answer datagrams on the UDP trap ports
	// with a cookie and ban a source that sends it back (package
	// udptrap). Off, UDP traps only alert.
	UDPVerify bool `toml:"udp_verify"`
	// TCPBytes is how many random bytes the listener writes to a trap
	// connection before resetting it (0: reset at once).
	TCPBytes int `toml:"tcp_bytes"`
}

// MaxTrapBytes bounds [honeypot] tcp_bytes.
const MaxTrapBytes = 4096

// Scan is the validated [scan] table (daemon side; the kernel side is in
// policy.Policy.Scan).
type Scan struct {
	Detect    bool
	AutoBlock int
	BanTime   time.Duration
	Budget    int
	Window    time.Duration
}

// FilterFile is one [filter.NAME] table: a custom filter.
type FilterFile struct {
	FailRegex   []string `toml:"failregex"`
	IgnoreRegex []string `toml:"ignoreregex"`
	Prefix      string   `toml:"prefix"`
}

// Bans is the validated [bans] table.
type Bans struct {
	BanTime, FindTime, MaxBanTime, ForgetAfter time.Duration
	MaxRetry, PermanentAfter, IPv6Prefix       int
	Multiplier                                 float64
	AggregateV4, AggregateV6                   Aggregate
	Allowlist                                  []netip.Prefix
}

// Aggregate is "Count/Bits": Count banned addresses inside one /Bits ban it.
type Aggregate struct{ Count, Bits int }

// Jail is a validated jail.
type Jail struct {
	Name, Filter, Mode string
	LogPaths, Units    []string
	MaxRetry           int
	FindTime, BanTime  time.Duration
	Line               int // where [jail.NAME] is
}

// Filter is a custom filter from [filter.NAME].
type Filter struct {
	Name                   string
	FailRegex, IgnoreRegex []string
	Prefix                 string
}

func defaultBans() BansFile {
	return BansFile{
		BanTime: dur(10 * time.Minute), FindTime: dur(10 * time.Minute), MaxRetry: 5,
		Multiplier: 2, MaxBanTime: dur(7 * 24 * time.Hour), ForgetAfter: dur(30 * 24 * time.Hour),
		IPv6Prefix: 64,
	}
}

var jailName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)
var unitName = regexp.MustCompile(`^[A-Za-z0-9@._:-]{1,128}$`)

// FilterCheck validates a filter: a built-in name and mode, or custom
// patterns. The daemon's filter library provides it; config only reports.
type FilterCheck func(name, mode string, custom *Filter) error

// daemonParts validates [daemon], [bans], [jail.*] and [filter.*].
func (v *validator) daemonParts(f *File, ld *Loaded, networks map[string][]netip.Prefix) {
	b := f.Bans
	out := Bans{BanTime: b.BanTime.D, FindTime: b.FindTime.D, MaxBanTime: b.MaxBanTime.D,
		ForgetAfter: b.ForgetAfter.D, MaxRetry: b.MaxRetry, PermanentAfter: b.PermanentAfter, IPv6Prefix: b.IPv6Prefix, Multiplier: b.Multiplier}
	if out.BanTime <= 0 {
		v.add("bans.bantime", fmt.Errorf("must be positive"))
	}
	if out.FindTime <= 0 {
		v.add("bans.findtime", fmt.Errorf("must be positive"))
	}
	if out.MaxRetry < 1 || out.MaxRetry > 1000 {
		v.add("bans.maxretry", fmt.Errorf("%d out of range 1-1000", out.MaxRetry))
	}
	if out.Multiplier < 1 || out.Multiplier > 100 {
		v.add("bans.multiplier", fmt.Errorf("%v out of range 1-100", out.Multiplier))
	}
	if out.PermanentAfter < 0 {
		v.add("bans.permanent_after", fmt.Errorf("must not be negative"))
	}
	if out.IPv6Prefix < 32 || out.IPv6Prefix > 128 {
		v.add("bans.ipv6_prefix", fmt.Errorf("%d out of range 32-128", out.IPv6Prefix))
	}
	out.AggregateV4 = v.aggregate("bans.aggregate_v4", b.AggregateV4, 8, 31)
	out.AggregateV6 = v.aggregate("bans.aggregate_v6", b.AggregateV6, 32, 127)
	for i, s := range b.Allowlist {
		path := "bans.allowlist." + strconv.Itoa(i+1)
		if ps, ok := networks[s]; ok {
			out.Allowlist = append(out.Allowlist, ps...)
			continue
		}
		p, err := policy.ParsePrefix(s)
		if err != nil {
			v.add(path, fmt.Errorf("%v (want an address, a prefix or a network name)", err))
			continue
		}
		out.Allowlist = append(out.Allowlist, p)
	}
	ld.Bans = out
	v.scanParts(f, ld)

	names := make([]string, 0, len(f.Filters))
	for name := range f.Filters {
		names = append(names, name)
	}
	slices.Sort(names)
	custom := map[string]*Filter{}
	for _, name := range names {
		ff := f.Filters[name]
		path := "filter." + name
		if !jailName.MatchString(name) {
			v.add(path, fmt.Errorf("filter name %q: want lower-case letters, digits, _ or -", name))
			continue
		}
		flt := &Filter{Name: name, FailRegex: ff.FailRegex, IgnoreRegex: ff.IgnoreRegex, Prefix: ff.Prefix}
		if len(flt.FailRegex) == 0 {
			v.add(path+".failregex", fmt.Errorf("a filter needs at least one failregex"))
			continue
		}
		if v.filters != nil {
			if err := v.filters(name, "", flt); err != nil {
				v.add(path+".failregex", err)
				continue
			}
		}
		custom[name] = flt
		ld.Filters = append(ld.Filters, *flt)
	}

	names = names[:0]
	for name := range f.Jails {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		jf := f.Jails[name]
		path := "jail." + name
		if !jailName.MatchString(name) {
			v.add(path, fmt.Errorf("jail name %q: want lower-case letters, digits, _ or -", name))
			continue
		}
		if jf.Enabled != nil && !*jf.Enabled {
			continue
		}
		j := Jail{Name: name, Filter: jf.Filter, Mode: jf.Mode, LogPaths: jf.LogPath, Units: jf.Journal,
			MaxRetry: out.MaxRetry, FindTime: out.FindTime, BanTime: out.BanTime, Line: v.loc.at(path).Line}
		if j.Filter == "" {
			j.Filter = name
		}
		if jf.MaxRetry != 0 {
			j.MaxRetry = jf.MaxRetry
			if j.MaxRetry < 1 || j.MaxRetry > 1000 {
				v.add(path+".maxretry", fmt.Errorf("%d out of range 1-1000", j.MaxRetry))
			}
		}
		if jf.FindTime != nil {
			if j.FindTime = jf.FindTime.D; j.FindTime <= 0 {
				v.add(path+".findtime", fmt.Errorf("must be positive"))
			}
		}
		if jf.BanTime != nil {
			if j.BanTime = jf.BanTime.D; j.BanTime <= 0 {
				v.add(path+".bantime", fmt.Errorf("must be positive"))
			}
		}
		if len(j.LogPaths) == 0 && len(j.Units) == 0 {
			v.add(path, fmt.Errorf("jail %q reads nothing: set logpath or journal", name))
		}
		for i, p := range j.LogPaths {
			if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "*?[") {
				v.add(path+".logpath."+strconv.Itoa(i+1), fmt.Errorf("%q: want an absolute file path (no globs)", p))
			}
		}
		for i, u := range j.Units {
			if !unitName.MatchString(u) {
				v.add(path+".journal."+strconv.Itoa(i+1), fmt.Errorf("%q is not a systemd unit name", u))
			}
		}
		if v.filters != nil {
			if err := v.filters(j.Filter, j.Mode, custom[j.Filter]); err != nil {
				field := ".filter"
				if j.Mode != "" && strings.Contains(err.Error(), "mode") {
					field = ".mode"
				}
				v.add(path+field, err)
			}
		}
		ld.Jails = append(ld.Jails, j)
	}
}

func (v *validator) aggregate(path, s string, minBits, maxBits int) Aggregate {
	if s == "" {
		return Aggregate{}
	}
	cs, bs, ok := strings.Cut(s, "/")
	c, err1 := strconv.Atoi(cs)
	b, err2 := strconv.Atoi(bs)
	if !ok || err1 != nil || err2 != nil || c < 2 || c > 10000 || b < minBits || b > maxBits {
		v.add(path, fmt.Errorf("%q: want COUNT/BITS, e.g. 5/24 (count 2-10000, bits %d-%d)", s, minBits, maxBits))
		return Aggregate{}
	}
	return Aggregate{Count: c, Bits: b}
}

func defaultScan() ScanFile {
	return ScanFile{KernelBlock: true, KernelRate: "5/second", KernelBlockTime: dur(time.Minute), Detect: true, AutoBlock: 0,
		BanTime: dur(10 * time.Minute), Budget: 60, Window: dur(time.Minute), HoldWindow: dur(500 * time.Millisecond), HoldPass: dur(time.Hour)}
}

func defaultHoneypot() HoneypotFile {
	return HoneypotFile{BanTime: dur(24 * time.Hour), Listen: true}
}

// scanParts validates [scan] and [honeypot] into the policy (kernel side)
// and the loaded config (daemon side).
func (v *validator) scanParts(f *File, ld *Loaded) {
	s := f.Scan
	sc := Scan{Detect: s.Detect, AutoBlock: s.AutoBlock, BanTime: s.BanTime.D, Budget: s.Budget, Window: s.Window.D}
	if sc.AutoBlock < 0 || sc.AutoBlock > 5 {
		v.add("scan.auto_block", fmt.Errorf("danger level %d out of range 0-5 (0: never block on scans)", sc.AutoBlock))
	}
	if sc.BanTime <= 0 {
		v.add("scan.bantime", fmt.Errorf("must be positive"))
	}
	if sc.Budget < 1 || sc.Budget > 100000 {
		v.add("scan.budget", fmt.Errorf("%d out of range 1-100000 new scan bans per minute", sc.Budget))
	}
	if sc.Window < time.Second || sc.Window > 24*time.Hour {
		v.add("scan.window", fmt.Errorf("must be between 1s and 1d"))
	}
	ld.Scan = sc
	ld.Honeypot = f.Honeypot
	if h := f.Honeypot; h.TCPBytes < 0 || h.TCPBytes > MaxTrapBytes {
		v.add("honeypot.tcp_bytes", fmt.Errorf("%d out of range 0-%d (random bytes sent to a trap connection; 0: reset at once)", h.TCPBytes, MaxTrapBytes))
	}
	if h := f.Honeypot; h.UDPVerify && !h.Listen {
		v.add("honeypot.udp_verify", fmt.Errorf("needs listen = true: the daemon's listener answers the datagrams"))
	}
	if ld.Policy == nil {
		return
	}
	p := ld.Policy
	p.Allowlist = append(p.Allowlist, ld.Bans.Allowlist...)
	p.Logging.ScanFeed = sc.Detect && p.Logging.Group != 0
	p.Scan = policy.ScanGuard{Block: s.KernelBlock, BlockTime: s.KernelBlockTime.D, Size: 8192}
	if s.KernelBlock {
		p.Scan.Rate = v.rate("scan.kernel_rate", s.KernelRate, false)
		if p.Scan.BlockTime < time.Second || p.Scan.BlockTime > time.Hour {
			v.add("scan.kernel_block_time", fmt.Errorf("must be between 1s and 1h: a block on packet evidence stays short"))
		}
	}
	h := f.Honeypot
	p.Honeypot.BanTime = h.BanTime.D
	if p.Honeypot.BanTime <= 0 {
		v.add("honeypot.bantime", fmt.Errorf("must be positive"))
	}
	seen := map[int]bool{}
	for _, side := range []struct {
		key   string
		ports []int
		out   *[]uint16
	}{{"tcp", h.TCP, &p.Honeypot.TCP}, {"udp", h.UDP, &p.Honeypot.UDP}} {
		for k := range seen {
			delete(seen, k)
		}
		for i, port := range side.ports {
			path := "honeypot." + side.key + "." + strconv.Itoa(i+1)
			if port < 1 || port > 65535 {
				v.add(path, fmt.Errorf("port %d out of range 1-65535", port))
				continue
			}
			if seen[port] {
				v.add(path, fmt.Errorf("port %d listed twice", port))
				continue
			}
			seen[port] = true
			if side.key == "tcp" && slices.Contains(p.SSHPorts, uint16(port)) {
				v.add(path, fmt.Errorf("port %d is an SSH port; a trap there would ban your admins", port))
				continue
			}
			if r, ok := allowsPort(p, side.key, uint16(port)); ok {
				v.add(path, fmt.Errorf("port %d is opened by rule %d (%s): a trap must be a port nothing legitimate uses", port, r+1, p.Rules[r].Summary()))
				continue
			}
			*side.out = append(*side.out, uint16(port))
		}
	}
}

// allowsPort finds an inbound allow or limit rule that admits proto/port.
func allowsPort(p *policy.Policy, proto string, port uint16) (int, bool) {
	for i, r := range p.Rules {
		if r.Direction != policy.In || (r.Action != policy.Allow && r.Action != policy.Limit) {
			continue
		}
		if r.App != "" {
			for _, s := range r.Services {
				if (s.Proto == "" || string(s.Proto) == proto) && s.Ports.Contains(port) {
					return i, true
				}
			}
			continue
		}
		if len(r.To.Ports) == 0 {
			if r.Proto == policy.ProtoAny || string(r.Proto) == proto {
				return i, true // all ports
			}
			continue
		}
		if (r.Proto == policy.ProtoAny || string(r.Proto) == proto) && r.To.Ports.Contains(port) {
			return i, true
		}
	}
	return 0, false
}
