package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/moat-sec/moat/internal/appprofile"
	"github.com/moat-sec/moat/internal/policy"
)

// DefaultPath is where the policy lives unless --config or MOAT_CONFIG say
// otherwise.
const DefaultPath = "/etc/moat/moat.toml"

// maxFileSize bounds what we read: a policy is small, a 10 MB file is a
// mistake or an attack.
const maxFileSize = 4 << 20

// File is moat.toml as written. Unset keys keep the defaults of Defaults().
type File struct {
	Firewall  Firewall            `toml:"firewall"`
	Defaults  DefaultPolicies     `toml:"defaults"`
	Networks  map[string][]string `toml:"networks"`
	Guards    Guards              `toml:"guards"`
	Logging   Logging             `toml:"logging"`
	Limit     Limit               `toml:"limit"`
	Rules     []policy.Spec       `toml:"rule"`
	Redirects []RedirectFile      `toml:"redirect"`

	Daemon   DaemonFile            `toml:"daemon"`
	Bans     BansFile              `toml:"bans"`
	Scan     ScanFile              `toml:"scan"`
	Honeypot HoneypotFile          `toml:"honeypot"`
	Jails    map[string]JailFile   `toml:"jail"`
	Filters  map[string]FilterFile `toml:"filter"`
}

// Firewall is the [firewall] table.
type Firewall struct {
	Table     string   `toml:"table"`
	Priority  int      `toml:"priority"`
	SSHPorts  []int    `toml:"ssh_ports"`
	AppDirs   []string `toml:"app_dirs"`
	RulesFile string   `toml:"rules_file"`
}

// DefaultPolicies is the [defaults] table.
type DefaultPolicies struct {
	Incoming string `toml:"incoming"`
	Outgoing string `toml:"outgoing"`
	Routed   string `toml:"routed"`
}

// Guards is the [guards] table.
type Guards struct {
	Loopback    bool   `toml:"loopback"`
	Established bool   `toml:"established"`
	Invalid     bool   `toml:"invalid"`
	BadTCPFlags bool   `toml:"bad_tcp_flags"`
	ICMP        bool   `toml:"icmp"`
	EchoRate    string `toml:"echo_rate"`
	SYNFlood    string `toml:"syn_flood"`
	RPFilter    string `toml:"rp_filter"`
}

// Logging is the [logging] table.
type Logging struct {
	Level      string `toml:"level"`
	Rate       string `toml:"rate"`
	NFLogGroup int    `toml:"nflog_group"`
	NFLogRate  string `toml:"nflog_rate"`
	Prefix     string `toml:"prefix"`
}

// Limit is the [limit] table: defaults for limit rules.
type Limit struct {
	Rate       string `toml:"rate"`
	IPv6Prefix int    `toml:"ipv6_prefix"`
	TableSize  int    `toml:"table_size"`
}

// Defaults returns the values a key takes when the file does not set it.
func Defaults() File {
	return File{
		Firewall: Firewall{Table: "moat", SSHPorts: []int{22}, AppDirs: []string{"apps.d", "/etc/ufw/applications.d"}, RulesFile: "rules.toml"},
		Defaults: DefaultPolicies{Incoming: "deny", Outgoing: "allow", Routed: "deny"},
		Guards:   Guards{Loopback: true, Established: true, Invalid: true, BadTCPFlags: true, ICMP: true, EchoRate: "5/second"},
		Logging:  Logging{Level: "low", Rate: "3/minute", NFLogGroup: 100, NFLogRate: "100/second", Prefix: "moat"},
		Limit:    Limit{Rate: "6/30s", IPv6Prefix: 64, TableSize: 65536},
		Bans:     defaultBans(),
		Scan:     defaultScan(),
		Honeypot: defaultHoneypot(),
	}
}

// RulesFile is the CLI-managed rules file: only [[rule]] tables.
type RulesFile struct {
	Rules []policy.Spec `toml:"rule"`
}

// Loaded is a policy read from disk, with what the CLI needs to edit it.
type Loaded struct {
	Path        string // moat.toml
	RulesPath   string // the managed rules file
	File        File
	Managed     []policy.Spec // the managed rules, in order
	Policy      *policy.Policy
	Apps        *appprofile.Catalogue
	HandWritten int // number of rules from moat.toml; they come first

	Daemon   DaemonFile
	Bans     Bans
	Jails    []Jail
	Filters  []Filter
	Scan     Scan
	Honeypot HoneypotFile
}

// CheckFilters, when set, validates jail filters and custom filter patterns
// at load (the daemon's filter library sets it), so that a bad pattern is a
// config error with a position.
var CheckFilters FilterCheck

// Load reads and validates the policy at path and its managed rules file. On
// any error it returns Errors (each with file, line, column and field) and no
// policy.
func Load(path string) (*Loaded, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, Errors{{File: path, Msg: err.Error()}}
	}
	return load(path, data)
}

// load is Load on the policy's bytes (the managed rules file and the
// application directories are still read from disk).
func load(path string, data []byte) (*Loaded, error) {
	f := Defaults()
	loc := newLocator(data)
	if err := checkDurationKinds(path, loc); err != nil {
		return nil, err
	}
	if err := decodeStrict(path, data, &f); err != nil {
		return nil, err
	}
	ld := &Loaded{Path: path, File: f, HandWritten: len(f.Rules)}
	ld.RulesPath = resolvePath(path, f.Firewall.RulesFile)

	v := &validator{file: path, loc: loc, filters: CheckFilters}
	pol := v.policy(&f)
	ld.Daemon = f.Daemon

	var managedLoc *locator
	if rdata, err := readFile(ld.RulesPath); err == nil {
		var rf RulesFile
		if err := decodeStrict(ld.RulesPath, rdata, &rf); err != nil {
			return nil, err
		}
		ld.Managed = rf.Rules
		managedLoc = newLocator(rdata)
	} else if !errors.Is(err, fs.ErrNotExist) {
		v.errs = append(v.errs, &Error{File: ld.RulesPath, Msg: err.Error()})
	}

	var dirs []string
	for _, d := range f.Firewall.AppDirs {
		dirs = append(dirs, resolvePath(path, d))
	}
	apps, err := appprofile.Load(dirs...)
	if err != nil {
		v.errs = append(v.errs, appError(path, loc, err))
		apps = appprofile.Builtin()
	}
	ld.Apps = apps
	lookup := appLookup{apps}

	for i, s := range f.Rules {
		r, err := policy.Resolve(s, pol.Networks, lookup)
		if err != nil {
			v.add("rule."+strconv.Itoa(i+1)+"."+fieldOf(err, s), err)
			continue
		}
		r.Origin = policy.Origin{File: path, Line: loc.at("rule." + strconv.Itoa(i+1)).Line}
		pol.Rules = append(pol.Rules, r)
	}
	mv := &validator{file: ld.RulesPath, loc: managedLoc}
	for i, s := range ld.Managed {
		r, err := policy.Resolve(s, pol.Networks, lookup)
		if err != nil {
			mv.add("rule."+strconv.Itoa(i+1)+"."+fieldOf(err, s), err)
			continue
		}
		r.Origin = policy.Origin{File: ld.RulesPath, Line: managedLoc.at("rule." + strconv.Itoa(i+1)).Line, Managed: true}
		pol.Rules = append(pol.Rules, r)
	}
	ld.Policy = pol
	v.redirects(&f, pol)
	v.daemonParts(&f, ld, pol.Networks)
	v.holdParts(&f, pol)
	errs := append(v.errs, mv.errs...)
	if len(errs) > 0 {
		return nil, errs
	}
	return ld, nil
}

type appLookup struct{ c *appprofile.Catalogue }

func (a appLookup) LookupApp(name string) (string, []policy.Service, bool) {
	p, ok := a.c.Lookup(name)
	if !ok {
		return "", nil, false
	}
	var svcs []policy.Service
	for _, port := range p.Ports {
		proto := policy.Proto(port.Proto)
		r := policy.PortRange{First: port.First, Last: port.Last}
		if i := slices.IndexFunc(svcs, func(s policy.Service) bool { return s.Proto == proto }); i >= 0 {
			svcs[i].Ports = append(svcs[i].Ports, r)
			continue
		}
		svcs = append(svcs, policy.Service{Proto: proto, Ports: policy.Ports{r}})
	}
	return p.Name, svcs, true
}

func appError(path string, loc *locator, err error) *Error {
	var pe *appprofile.ParseError
	if errors.As(err, &pe) {
		return &Error{File: pe.Path, Line: pe.Line, Msg: pe.Msg}
	}
	s := loc.at("firewall.app_dirs")
	return &Error{File: path, Line: s.Line, Col: s.Col, Field: "firewall.app_dirs", Msg: err.Error()}
}

// fieldOf picks the Spec field an error from policy.Resolve is about: its
// messages start with the field's TOML key ("from: unknown network").
func fieldOf(err error, s policy.Spec) string {
	msg := err.Error()
	key, _, ok := strings.Cut(msg, ":")
	if ok && specKeys[key] {
		return key
	}
	return "action"
}

var specKeys = map[string]bool{
	"action": true, "direction": true, "in_on": true, "out_on": true, "proto": true, "from": true,
	"from_port": true, "to": true, "port": true, "app": true, "rate": true, "conn_limit": true,
	"log": true, "comment": true,
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	if st.Size() > maxFileSize {
		return nil, fmt.Errorf("file is %d bytes, larger than the %d-byte limit", st.Size(), maxFileSize)
	}
	if err := checkOwner(st); err != nil {
		return nil, err
	}
	data := make([]byte, st.Size())
	n, err := f.Read(data)
	if err != nil && st.Size() > 0 {
		return nil, err
	}
	return data[:n], nil
}

var durationKeys = map[string]bool{
	"bans.bantime": true, "bans.findtime": true, "bans.max_bantime": true, "bans.forget_after": true,
	"scan.kernel_block_time": true, "scan.bantime": true, "scan.window": true, "honeypot.bantime": true,
}

// checkDurationKinds refuses a bare number where a duration belongs
// ("bantime = 600": seconds? minutes?). The decoder would report it without
// a position, so it is checked here first.
func checkDurationKinds(path string, loc *locator) error {
	var errs Errors
	for key, kind := range loc.kinds {
		parts := strings.Split(key, ".")
		last := parts[len(parts)-1]
		isDur := (len(parts) == 2 && durationKeys[parts[0]+"."+last]) ||
			(len(parts) == 3 && parts[0] == "jail" && (last == "bantime" || last == "findtime"))
		if isDur && kind != unstable.String {
			s := loc.pos[key]
			errs = append(errs, &Error{File: path, Line: s.Line, Col: s.Col, Field: fieldName(key), Msg: "want a duration string with a unit, e.g. \"10m\", \"1h\", \"7d\""})
		}
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b *Error) int { return a.Line - b.Line })
		return errs
	}
	return nil
}

// resolvePath makes p relative to the directory of the policy file.
func resolvePath(policyPath, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(policyPath), p)
}

// decodeStrict decodes TOML, refusing unknown keys and wrong types, with
// positions on every error.
func decodeStrict(path string, data []byte, v any) error {
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var sm *toml.StrictMissingError
	if errors.As(err, &sm) {
		var errs Errors
		for _, de := range sm.Errors {
			row, col := de.Position()
			k := de.Key()
			if len(k) > 1 && !slices.Contains(knownKeys[""], k[0]) {
				k = k[:1] // an unknown table: name it, not its first key
			}
			errs = append(errs, &Error{File: path, Line: row, Col: col, Field: fieldName(strings.Join(k, ".")), Msg: "unknown key" + suggest(k)})
		}
		return errs
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		return Errors{{File: path, Line: row, Col: col, Field: fieldName(strings.Join(de.Key(), ".")), Msg: de.Error()}}
	}
	return Errors{{File: path, Msg: err.Error()}}
}

// knownKeys lists every key per table, for "did you mean" hints: "" for
// the top level, "jail.*" for the tables of a map. It is read off File's
// toml tags, so a new key is hinted at as soon as it exists.
var knownKeys = tableKeys(reflect.TypeFor[File]())

func tableKeys(t reflect.Type) map[string][]string {
	out := map[string][]string{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		out[""] = append(out[""], name)
		ft := f.Type
		suffix := ""
		switch ft.Kind() {
		case reflect.Slice:
			ft = ft.Elem()
		case reflect.Map:
			ft, suffix = ft.Elem(), ".*"
		}
		if ft.Kind() != reflect.Struct {
			continue
		}
		for sf := range ft.Fields() {
			if k, _, _ := strings.Cut(sf.Tag.Get("toml"), ","); k != "" && k != "-" {
				out[name+suffix] = append(out[name+suffix], k)
			}
		}
	}
	return out
}

func suggest(key []string) string {
	if len(key) == 0 {
		return ""
	}
	table := ""
	if len(key) > 1 {
		table = key[0]
		if table == "jail" || table == "filter" {
			table = key[0] + ".*"
		}
	}
	bad := key[len(key)-1]
	best, bestD := "", 3
	for _, k := range knownKeys[table] {
		if d := editDistance(bad, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return fmt.Sprintf(" %q", bad)
	}
	return fmt.Sprintf(" %q (did you mean %q?)", bad, best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// validator turns File values into policy values, collecting errors with
// positions.
type validator struct {
	file    string
	loc     *locator
	errs    Errors
	filters FilterCheck
}

func (v *validator) add(path string, err error) {
	var s span
	if v.loc != nil {
		s = v.loc.at(path)
	}
	msg := err.Error()
	if key, rest, ok := strings.Cut(msg, ": "); ok && strings.HasSuffix(path, "."+key) {
		msg = rest
	}
	v.errs = append(v.errs, &Error{File: v.file, Line: s.Line, Col: s.Col, Field: fieldName(path), Msg: msg})
}

var tableName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,31}$`)
var networkName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,31}$`)

func (v *validator) policy(f *File) *policy.Policy {
	p := &policy.Policy{Networks: map[string][]netip.Prefix{}}
	if !tableName.MatchString(f.Firewall.Table) {
		v.add("firewall.table", fmt.Errorf("table name %q: want a letter then up to 31 letters, digits or _", f.Firewall.Table))
	}
	p.Table = f.Firewall.Table
	if f.Firewall.Priority < -400 || f.Firewall.Priority > 400 {
		v.add("firewall.priority", fmt.Errorf("priority %d out of range -400..400", f.Firewall.Priority))
	}
	p.Priority = f.Firewall.Priority
	for i, port := range f.Firewall.SSHPorts {
		if port < 1 || port > 65535 {
			v.add("firewall.ssh_ports."+strconv.Itoa(i+1), fmt.Errorf("port %d out of range 1-65535", port))
			continue
		}
		p.SSHPorts = append(p.SSHPorts, uint16(port))
	}

	p.Incoming = v.defaultAction("defaults.incoming", f.Defaults.Incoming)
	p.Outgoing = v.defaultAction("defaults.outgoing", f.Defaults.Outgoing)
	p.Routed = v.defaultAction("defaults.routed", f.Defaults.Routed)

	names := make([]string, 0, len(f.Networks))
	for name := range f.Networks {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		path := "networks." + name
		if !networkName.MatchString(name) || name == "any" {
			v.add(path, fmt.Errorf("network name %q: want a letter then up to 31 letters, digits, _ or - (and not \"any\")", name))
			continue
		}
		if len(f.Networks[name]) == 0 {
			v.add(path, fmt.Errorf("network %q is empty", name))
			continue
		}
		for i, s := range f.Networks[name] {
			pfx, err := policy.ParsePrefix(s)
			if err != nil {
				v.add(path+"."+strconv.Itoa(i+1), err)
				continue
			}
			p.Networks[name] = append(p.Networks[name], pfx)
		}
	}

	g := f.Guards
	p.Guards = policy.Guards{Loopback: g.Loopback, Established: g.Established, Invalid: g.Invalid, BadTCPFlags: g.BadTCPFlags, ICMP: g.ICMP}
	p.Guards.EchoRate = v.rate("guards.echo_rate", g.EchoRate, true)
	p.Guards.SYNFlood = v.rate("guards.syn_flood", g.SYNFlood, true)
	switch g.RPFilter {
	case "", "off":
	case "loose", "strict":
		p.Guards.RPFilter = g.RPFilter
	default:
		v.add("guards.rp_filter", fmt.Errorf("%q: want off, loose or strict", g.RPFilter))
	}

	l := f.Logging
	lvl, err := policy.ParseLogLevel(l.Level)
	if err != nil {
		v.add("logging.level", err)
	}
	p.Logging = policy.Logging{Level: lvl, Prefix: l.Prefix}
	p.Logging.Rate = v.rate("logging.rate", l.Rate, false)
	p.Logging.GroupRate = v.rate("logging.nflog_rate", l.NFLogRate, false)
	if l.NFLogGroup < 0 || l.NFLogGroup > 65535 {
		v.add("logging.nflog_group", fmt.Errorf("group %d out of range 0-65535 (0 disables NFLOG)", l.NFLogGroup))
	}
	p.Logging.Group = uint16(l.NFLogGroup)
	if len(l.Prefix) > 20 || strings.ContainsAny(l.Prefix, "\"\\\n\r\t") || !printable(l.Prefix) {
		v.add("logging.prefix", fmt.Errorf("prefix %q: at most 20 printable characters, no quotes or backslashes", l.Prefix))
	}

	p.Limit.Rate = v.rate("limit.rate", f.Limit.Rate, false)
	if f.Limit.IPv6Prefix < 1 || f.Limit.IPv6Prefix > 128 {
		v.add("limit.ipv6_prefix", fmt.Errorf("prefix length %d out of range 1-128", f.Limit.IPv6Prefix))
	}
	p.Limit.IPv6Bits = f.Limit.IPv6Prefix
	if f.Limit.TableSize < 16 || f.Limit.TableSize > 1<<24 {
		v.add("limit.table_size", fmt.Errorf("table size %d out of range 16-16777216", f.Limit.TableSize))
	}
	p.Limit.TableSize = uint32(f.Limit.TableSize)
	return p
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func (v *validator) defaultAction(path, s string) policy.Action {
	a, err := policy.ParseAction(s)
	if err == nil && a == policy.Limit {
		err = fmt.Errorf("a default cannot be \"limit\" (want allow, deny or reject)")
	}
	if err != nil {
		v.add(path, err)
	}
	return a
}

func (v *validator) rate(path, s string, optional bool) policy.Rate {
	if s == "" && optional {
		return policy.Rate{}
	}
	r, err := policy.ParseRate(s)
	if err != nil {
		v.add(path, err)
	}
	return r
}
