package authfail

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/moat-sec/moat/internal/lru"

	"github.com/moat-sec/moat/internal/event"
)

// Jail defaults.
const (
	DefaultMaxRetry   = 5
	DefaultFindTime   = 10 * time.Minute
	DefaultBanTime    = 10 * time.Minute
	DefaultIPv6Prefix = 64
	DefaultMaxTracked = 100000

	// EvidenceLineLen is how much of each line a finding keeps.
	EvidenceLineLen = 512
)

// JailConfig configures a jail.
type JailConfig struct {
	Name     string
	Filter   string // builtin filter name (used when NewJail gets no filter)
	Mode     string // builtin filter mode
	MaxRetry int    // failures that make a finding; default 5
	FindTime time.Duration
	BanTime  time.Duration // not used to detect; carried for the decider
	// IPv6Prefix groups IPv6 sources: an attacker walking a /64 is one
	// attacker (SECURITY.md R15). Default 64; 128 counts single addresses.
	IPv6Prefix int
	// MaxTracked bounds the sources counted at once (LRU eviction);
	// default 100000.
	MaxTracked int
	// Sources lists the observation Source ids this jail reads; empty
	// reads all.
	Sources []string
	// RequireUnits: a trusted (journald) observation is only accepted when
	// its Unit is one of these. Untrusted ones (files) are accepted and
	// counted in Stats.Untrusted.
	RequireUnits []string
}

// JailStats are a jail's counters.
type JailStats struct {
	Lines       uint64 // observations read (after the Sources filter)
	Matches     uint64 // lines a rule matched
	Failures    uint64 // failures counted
	Findings    uint64
	Tracked     int    // sources counted now
	Conns       int    // connections followed by the filter's session
	Refused     uint64 // trusted observations refused (unit, _COMM or _UID)
	Untrusted   uint64 // observations without trusted fields
	BadAddr     uint64 // matched lines whose address did not parse (192.030.0.6)
	Evicted     uint64 // sources dropped by the LRU bound
	NotAdmitted uint64 // failures of new sources not tracked while the table was full (a flood)
	OtherSource uint64 // observations from sources the jail does not read
}

// Jail counts failures per source in a sliding window and reports a
// finding when a source reaches MaxRetry. It is safe for concurrent use.
type Jail struct {
	cfg     JailConfig
	f       *Filter
	comms   []string // acceptable _COMM values, when the filter knows its daemons
	mu      sync.Mutex
	session *Session
	buckets *lru.Map[netip.Prefix, bucket]
	admit   *admission // nil until the table first fills
	stats   JailStats
}

type bucket struct {
	times []time.Time // failure times, oldest first, at most MaxRetry
	lines []string    // evidence, parallel to times
	last  netip.Addr
}

// NewJail builds a jail over f, or over the builtin filter cfg.Filter in
// cfg.Mode when f is nil.
func NewJail(cfg JailConfig, f *Filter) (*Jail, error) {
	if cfg.Name == "" {
		return nil, errors.New("authfail: jail has no name")
	}
	if f == nil {
		if cfg.Filter == "" {
			return nil, fmt.Errorf("authfail: jail %q: no filter", cfg.Name)
		}
		var err error
		if f, err = Builtin(cfg.Filter, cfg.Mode); err != nil {
			return nil, fmt.Errorf("authfail: jail %q: %w", cfg.Name, err)
		}
	} else if cfg.Filter != "" && cfg.Filter != f.Name() {
		return nil, fmt.Errorf("authfail: jail %q: filter %q given, config names %q", cfg.Name, f.Name(), cfg.Filter)
	}
	switch {
	case cfg.MaxRetry == 0:
		cfg.MaxRetry = DefaultMaxRetry
	case cfg.MaxRetry < 0:
		return nil, fmt.Errorf("authfail: jail %q: maxretry %d is negative", cfg.Name, cfg.MaxRetry)
	}
	switch {
	case cfg.FindTime == 0:
		cfg.FindTime = DefaultFindTime
	case cfg.FindTime < 0:
		return nil, fmt.Errorf("authfail: jail %q: findtime %s is negative", cfg.Name, cfg.FindTime)
	}
	switch {
	case cfg.BanTime == 0:
		cfg.BanTime = DefaultBanTime
	case cfg.BanTime < 0:
		return nil, fmt.Errorf("authfail: jail %q: bantime %s is negative", cfg.Name, cfg.BanTime)
	}
	switch {
	case cfg.IPv6Prefix == 0:
		cfg.IPv6Prefix = DefaultIPv6Prefix
	case cfg.IPv6Prefix < 1 || cfg.IPv6Prefix > 128:
		return nil, fmt.Errorf("authfail: jail %q: ipv6 prefix /%d is not in 1..128", cfg.Name, cfg.IPv6Prefix)
	}
	switch {
	case cfg.MaxTracked == 0:
		cfg.MaxTracked = DefaultMaxTracked
	case cfg.MaxTracked < 0:
		return nil, fmt.Errorf("authfail: jail %q: maxtracked %d is negative", cfg.Name, cfg.MaxTracked)
	}
	j := &Jail{
		cfg:     cfg,
		f:       f,
		session: f.NewSession(0),
		buckets: lru.New[netip.Prefix, bucket](cfg.MaxTracked),
	}
	for _, d := range f.daemons() {
		// _COMM is the executable's name, cut to 15 bytes by the kernel
		c := d[strings.LastIndexByte(d, '/')+1:]
		if len(c) > 15 {
			c = c[:15]
		}
		j.comms = append(j.comms, c)
	}
	return j, nil
}

// Config returns the jail's configuration with defaults filled in.
func (j *Jail) Config() JailConfig { return j.cfg }

// Filter returns the jail's filter.
func (j *Jail) Filter() *Filter { return j.f }

// Stats returns the jail's counters.
func (j *Jail) Stats() JailStats {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.stats
	s.Tracked = j.buckets.Len()
	s.Conns = j.session.Conns()
	return s
}

// forgers are programs any local user can run to write a syslog line with
// any tag (SECURITY.md A7).
var forgers = []string{"logger", "systemd-cat"}

// trusted reports whether a journald observation came from the daemon.
func (j *Jail) trusted(o *event.Observation) bool {
	if len(j.cfg.RequireUnits) > 0 && !slices.Contains(j.cfg.RequireUnits, o.Unit) {
		return false
	}
	if slices.Contains(forgers, o.Comm) {
		return false
	}
	if o.Comm != "" && len(j.comms) > 0 && !slices.Contains(j.comms, o.Comm) {
		return false
	}
	if j.f.rootOnly && o.UID != 0 {
		return false
	}
	return true
}

// Observe reads one observation. It returns a finding when the
// observation's source reaches MaxRetry failures within FindTime of
// o.Time; that source's count then starts again. A trusted observation
// not written by the daemon (a _COMM of logger, another program than the
// filter's daemons, a _UID other than 0 for a daemon that logs as root, a
// unit not in RequireUnits) is refused.
func (j *Jail) Observe(o event.Observation) *event.Finding {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.cfg.Sources) > 0 && !slices.Contains(j.cfg.Sources, o.Source) {
		j.stats.OtherSource++
		return nil
	}
	j.stats.Lines++
	if o.Trusted {
		if !j.trusted(&o) {
			j.stats.Refused++
			return nil
		}
	} else {
		j.stats.Untrusted++
	}
	r := j.session.process(unsafe.Slice(unsafe.StringData(o.Line), len(o.Line)), o.Time)
	if r.matched {
		j.stats.Matches++
	}
	if r.bad {
		j.stats.BadAddr++
	}
	j.expire(o.Time)
	if !r.ok {
		return nil
	}
	j.stats.Failures++
	key := keyFor(r.addr, j.cfg.IPv6Prefix)
	carried := 0 // failures the admission sketch saw before the source got in
	if _, tracked := j.buckets.Get(key); !tracked && j.buckets.Len() >= j.buckets.Cap() {
		if j.admit == nil {
			j.admit = newAdmission()
		}
		est := int(j.admit.add(key))
		if est < 2 {
			j.stats.NotAdmitted++
			return nil
		}
		carried = min(est-1, j.cfg.MaxRetry-1)
	}
	b, added, evicted := j.buckets.Put(key)
	if evicted {
		j.stats.Evicted++
	}
	if added {
		b.times = make([]time.Time, 0, j.cfg.MaxRetry)
		b.lines = make([]string, 0, j.cfg.MaxRetry)
		for range carried {
			b.times = append(b.times, o.Time)
			b.lines = append(b.lines, "(an earlier failure, counted while the table was full)")
		}
	}
	// drop failures that left the window
	cut := 0
	for cut < len(b.times) && !b.times[cut].After(o.Time.Add(-j.cfg.FindTime)) {
		cut++
	}
	if cut > 0 {
		n := copy(b.times, b.times[cut:])
		b.times = b.times[:n]
		n = copy(b.lines, b.lines[cut:])
		clear(b.lines[n:])
		b.lines = b.lines[:n]
	}
	if len(b.times) == j.cfg.MaxRetry {
		copy(b.times, b.times[1:])
		b.times = b.times[:len(b.times)-1]
		copy(b.lines, b.lines[1:])
		b.lines = b.lines[:len(b.lines)-1]
	}
	b.times = append(b.times, o.Time)
	b.lines = append(b.lines, evidence(o.Line))
	b.last = r.addr
	if len(b.times) < j.cfg.MaxRetry {
		return nil
	}
	fd := &event.Finding{
		Time:     o.Time,
		Addr:     b.last,
		Detector: "jail",
		Jail:     j.cfg.Name,
		Reason:   fmt.Sprintf("%d failures in %s", len(b.times), j.cfg.FindTime),
		Evidence: slices.Clone(b.lines),
		Verified: true,
	}
	j.buckets.Remove(key)
	j.stats.Findings++
	return fd
}

// expire drops at most two sources whose newest failure left the window,
// from the least recently used end, so memory follows the attack rate.
func (j *Jail) expire(now time.Time) {
	for range 2 {
		k, b, ok := j.buckets.Oldest()
		if !ok || len(b.times) > 0 && b.times[len(b.times)-1].After(now.Add(-j.cfg.FindTime)) {
			return
		}
		j.buckets.Remove(k)
	}
}

// evidence copies at most EvidenceLineLen bytes of a line, cut on a rune
// boundary, so that a finding does not pin the whole line.
func evidence(line string) string {
	if len(line) <= EvidenceLineLen {
		return strings.Clone(line)
	}
	n := EvidenceLineLen
	for n > 0 && !utf8.RuneStart(line[n]) {
		n--
	}
	return strings.Clone(line[:n])
}
