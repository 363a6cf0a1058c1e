package portscan

import (
	"cmp"
	"fmt"
	"hash/maphash"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/moat-sec/moat/internal/lru"

	"github.com/moat-sec/moat/internal/event"
)

// Defaults and bounds.
const (
	DefaultWindow     = 60 * time.Second
	DefaultMaxTracked = 100000
	DefaultRecent     = time.Hour

	// MaxListedPorts is how many ports a Scan lists; PortCount has them all.
	MaxListedPorts = 64
	// MaxKeptPorts is how many distinct ports are remembered per source,
	// each with the time it was last probed. Past it, a port that was not
	// probed in Window makes room; when none has expired, new ports are
	// only counted (see the package doc).
	MaxKeptPorts = 1024
	// EvidenceLineLen is how much of each probe line a finding keeps.
	EvidenceLineLen = 512

	maxEvidence = 5 // the probes that raised the danger level
	maxWindow   = 24 * time.Hour
	// maxEpisode bounds a scan: past it (a source that never paused for a
	// Window in 24 days) its counts start over, so that millisecond
	// offsets fit in 32 bits.
	maxEpisode = int64(1<<31) * int64(time.Millisecond)
)

// Default danger thresholds.
var (
	// DefaultThresholds are distinct ports probed in Window for danger
	// levels 1 to 5.
	DefaultThresholds = [5]int{5, 15, 50, 150, 1500}
	// DefaultPacketThresholds are probes in Window for danger levels 1 to
	// 5: higher than the port thresholds, because a client retrying one
	// closed port is not a scan.
	DefaultPacketThresholds = [5]int{20, 100, 500, 2500, 10000}
)

// Config configures a Detector. Zero values mean the defaults.
type Config struct {
	Window     time.Duration // default 60s: probes older than this are forgotten per source (at most 24h)
	MaxTracked int           // bounded LRU of sources, default 100000
	// Thresholds are the distinct ports probed in Window for danger
	// levels 1..5; all zero means DefaultThresholds. A level whose
	// threshold is zero or negative is never reached by ports.
	Thresholds [5]int
	// PacketThresholds are the probes in Window for danger levels 1..5;
	// all zero means DefaultPacketThresholds; all negative turns packet
	// counts off, leaving danger to ports alone.
	PacketThresholds [5]int
	// AutoBlock: a finding is emitted when a source reaches this danger
	// level (0 = never; Scans still reports the scan).
	AutoBlock int
	// Recent is how long Scans and Top list a source after its last
	// probe; default 1h. Sources are also forgotten when MaxTracked is
	// reached, least recently active first.
	Recent time.Duration
}

// Scan is one source's current or recent scan.
type Scan struct {
	Src         netip.Addr
	First, Last time.Time // first and last probe of this scan
	Packets     int       // probes
	Ports       []uint16  // distinct ports probed (TCP and UDP), sorted, at most MaxListedPorts
	PortCount   int       // distinct (protocol, port) pairs probed in this scan
	Protocols   []string  // "tcp", "udp", "icmp", "icmpv6", "ip"
	Types       []string  // e.g. "SYN (nmap -sS)", "UDP (nmap -sU)"; see the package doc
	Danger      int       // the highest level reached in this scan, 0..5
	OSGuess     string    // "Linux", "Windows", "macOS/BSD", "nmap raw", or "" (no guess)
	Finding     bool      // a finding was emitted for this scan
}

// PortCount is how many recent sources probed a port.
type PortCount struct {
	Proto   string // "tcp" or "udp"
	Port    uint16
	Sources int
}

// Stats are a Detector's counters.
type Stats struct {
	Observations uint64 // observations given to Observe
	Probes       uint64 // of which counted as probes
	Findings     uint64
	Evicted      uint64 // sources forgotten early because MaxTracked was reached
	Tracked      int    // sources remembered now
	KeptPorts    int    // port slots allocated, over all sources (bounded by 32 × MaxTracked)
}

// Detector classifies dropped probes into scans. It is safe for concurrent
// use; it starts no goroutines and reads time only from observations.
type Detector struct {
	mu        sync.Mutex
	thr, pthr [5]int
	autoBlock int
	win       uint32 // Window in ms
	winNS     int64
	recentNS  int64
	srcs      *lru.Map[netip.Addr, source]
	kept      int // port slots allocated (the capacity of every source's entries)
	budget    int // the most kept may reach
	seed      maphash.Seed
	stats     Stats
}

// entry is one port a source probed.
type entry struct {
	key uint32 // port, with 1<<16 for UDP
	at  uint32 // when last probed: ms since the scan's first probe
}

// source is what is remembered of one source: its current scan.
type source struct {
	first, last int64    // unix ns of the scan's first and last probe
	entries     []entry  // sorted by key
	evidence    []string // lines of the probes that raised the level
	prev        *Scan    // the last scan that reached danger 1, while this one has not
	packets     uint32   // probes in this scan
	ports       uint32   // distinct ports in this scan, those not kept included
	live        uint32   // entries with at >= cutoff
	cutoff      uint32   // see recount
	recount     uint32   // when live is recounted next
	slot        uint32   // start of the current window slot (ms offset)
	minAt       uint32   // no entry is older (see addPort)
	pkt, pktOld uint32   // probes in the current and the previous slot
	ovf, ovfOld uint32   // ports counted but not kept, per slot
	echoDst     uint32   // hash of the first ICMP echo's destination
	types       uint16   // kinds seen, one bit each
	os          uint8
	peak        uint8
	found       bool
}

// New returns a Detector for cfg, with defaults for zero values.
func New(cfg Config) *Detector {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	cfg.Window = min(max(cfg.Window, time.Millisecond), maxWindow)
	if cfg.MaxTracked <= 0 {
		cfg.MaxTracked = DefaultMaxTracked
	}
	if cfg.Thresholds == [5]int{} {
		cfg.Thresholds = DefaultThresholds
	}
	if cfg.PacketThresholds == [5]int{} {
		cfg.PacketThresholds = DefaultPacketThresholds
	}
	if cfg.Recent <= 0 {
		cfg.Recent = DefaultRecent
	}
	cfg.Recent = max(cfg.Recent, cfg.Window)
	return &Detector{
		thr:       cfg.Thresholds,
		pthr:      cfg.PacketThresholds,
		autoBlock: min(max(cfg.AutoBlock, 0), 6), // 6: above every level, never
		win:       uint32(cfg.Window / time.Millisecond),
		winNS:     int64(cfg.Window),
		recentNS:  int64(cfg.Recent),
		srcs:      lru.New[netip.Addr, source](cfg.MaxTracked),
		budget:    max(1<<16, 32*cfg.MaxTracked),
		seed:      maphash.MakeSeed(),
	}
}

// inbound reports whether prefix is that of a packet the firewall dropped,
// rejected or rate-limited on its way in: "<prefix>:in:drop:<reason> ",
// ":in:reject:", ":in:limit:" (moat's), or ufw's "[UFW BLOCK] " and
// "[UFW LIMIT BLOCK] " (for old logs read with package kmsg).
func inbound(prefix string) bool {
	prefix = strings.TrimSpace(prefix)
	if prefix == "[UFW BLOCK]" || prefix == "[UFW LIMIT BLOCK]" {
		return true
	}
	// From the right: the configurable first part may hold colons.
	i := strings.LastIndexByte(prefix, ':')
	if i < 0 {
		return false
	}
	rest := prefix[:i]
	j := strings.LastIndexByte(rest, ':')
	if j < 0 {
		return false
	}
	verdict, rest := rest[j+1:], rest[:j]
	if verdict != "drop" && verdict != "reject" && verdict != "limit" {
		return false
	}
	return rest == "in" || strings.HasSuffix(rest, ":in")
}

// Observe counts one observation and returns a finding when its source
// reaches the AutoBlock level, once per scan. It ignores observations that
// are not packets the firewall dropped on their way in (see inbound), and
// packets that are not probes (replies and backscatter: see classify).
func (d *Detector) Observe(o event.Observation) *event.Finding {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats.Observations++
	p := o.Packet
	if p == nil || !p.Src.IsValid() || o.Time.IsZero() || !inbound(o.Prefix) {
		return nil
	}
	k, ok := classify(p)
	if !ok {
		return nil
	}
	d.stats.Probes++
	now := o.Time.UnixNano()
	d.expire(now)
	s := d.source(p.Src)
	if s.packets == 0 || now-s.last > d.winNS || now-s.first >= maxEpisode {
		d.reset(p.Src, s, now)
	}
	now = max(now, s.last) // time runs forward within a source
	s.last = now
	off := uint32((now - s.first) / int64(time.Millisecond))

	s.roll(off, d.win)
	if s.packets < ^uint32(0) {
		s.packets++
	}
	s.pkt++
	s.types |= 1 << k
	switch p.Proto {
	case protoTCP:
		d.addPort(s, uint32(p.DstPort), off)
	case protoUDP:
		d.addPort(s, 1<<16|uint32(p.DstPort), off)
	}
	if k == kindPing {
		h := uint32(maphash.Comparable(d.seed, p.Dst)) | 1
		if s.echoDst == 0 {
			s.echoDst = h
		} else if s.echoDst != h {
			s.types |= 1 << kindSweep
		}
	}
	if k == kindSYN || k == kindConnect {
		if g := osGuess(p); g != osNone {
			s.os = g
		}
	}
	s.recountLive(off, d.win)
	level := d.danger(s, off)
	if level > s.peak && len(s.evidence) < maxEvidence {
		s.evidence = append(s.evidence, evidenceLine(o))
	}
	s.peak = max(s.peak, level)
	if s.peak > 0 {
		s.prev = nil
	}
	if d.autoBlock > 0 && !s.found && int(s.peak) >= d.autoBlock {
		s.found = true
		d.stats.Findings++
		return &event.Finding{
			Time:     o.Time,
			Addr:     p.Src,
			Detector: "portscan",
			Jail:     "portscan",
			Reason:   reason(s),
			Evidence: slices.Clone(s.evidence),
			Verified: false, // packet evidence can be forged (SECURITY.md R6)
		}
	}
	return nil
}

// source returns the state of addr, making room for it if needed.
func (d *Detector) source(addr netip.Addr) *source {
	if s, ok := d.srcs.Get(addr); ok {
		return s
	}
	if d.srcs.Len() >= d.srcs.Cap() {
		if k, old, ok := d.srcs.Oldest(); ok {
			d.release(old)
			d.srcs.Remove(k)
			d.stats.Evicted++
		}
	}
	s, _, _ := d.srcs.Put(addr)
	return s
}

// expire forgets, from the least recently active end, sources idle for
// longer than Recent, and sources that never reached danger 1 once idle
// for a Window. A little at a time: at most two per call.
func (d *Detector) expire(now int64) {
	for range 2 {
		k, s, ok := d.srcs.Oldest()
		if !ok {
			return
		}
		idle := now - s.last
		if idle <= d.recentNS && (s.peak > 0 || s.prev != nil || idle <= d.winNS) {
			return
		}
		d.release(s)
		d.srcs.Remove(k)
	}
}

// release gives back a source's port slots.
func (d *Detector) release(s *source) {
	d.kept -= cap(s.entries)
	s.entries = nil
}

// reset starts a new scan for s at now. Small port slices are reused.
// The last scan that reached danger 1 stays listed until this one does.
func (d *Detector) reset(addr netip.Addr, s *source, now int64) {
	entries := s.entries[:0]
	if cap(entries) > 16 {
		d.release(s)
		entries = nil
	}
	var prev *Scan
	switch {
	case s.peak > 0:
		sc := scanOf(addr, s)
		prev = &sc
	case s.prev != nil && now-s.prev.Last.UnixNano() <= d.recentNS:
		prev = s.prev
	}
	clear(s.evidence) // unpin the lines
	*s = source{first: now, last: now, entries: entries, evidence: s.evidence[:0], recount: d.win, prev: prev}
}

// roll moves the window slots of the packet and overflow counters on.
func (s *source) roll(off, win uint32) {
	d := off - s.slot
	if d < win {
		return
	}
	if d >= 2*win {
		s.pktOld, s.ovfOld = 0, 0
	} else {
		s.pktOld, s.ovfOld = s.pkt, s.ovf
	}
	s.pkt, s.ovf = 0, 0
	s.slot = off - d%win
}

// estimate is the count in the last Window from a slot counter: the
// current slot, and the previous one weighted by how much of it the window
// still covers.
func (s *source) estimate(cur, old, off, win uint32) int {
	in := uint64(off - s.slot)
	return int(cur) + int(uint64(old)*(uint64(win)-in)/uint64(win))
}

// addPort records a probe of port key at off.
func (d *Detector) addPort(s *source, key, off uint32) {
	i, found := slices.BinarySearchFunc(s.entries, key, func(e entry, k uint32) int { return cmp.Compare(e.key, k) })
	if found {
		e := &s.entries[i]
		if e.at < s.cutoff {
			s.live++
		}
		e.at = off
		return
	}
	s.ports = min(s.ports+1, 2<<16) // more would be ports counted twice
	if len(s.entries) == MaxKeptPorts {
		// Full: make room by forgetting the port probed longest ago, if
		// that was more than a Window ago. minAt is a lower bound of the
		// entries' times (they only move forward), which spares the
		// search while none can have expired.
		if off-s.minAt < d.win {
			s.ovf++
			return
		}
		j := 0
		for n := range s.entries {
			if s.entries[n].at < s.entries[j].at {
				j = n
			}
		}
		s.minAt = s.entries[j].at
		if off-s.entries[j].at < d.win {
			s.ovf++
			return
		}
		if s.entries[j].at >= s.cutoff {
			s.live--
		}
		s.entries = slices.Delete(s.entries, j, j+1)
		if j < i {
			i--
		}
	}
	if len(s.entries) == cap(s.entries) && !d.grow(s) {
		s.ovf++
		return
	}
	s.entries = slices.Insert(s.entries, i, entry{key: key, at: off})
	s.live++
}

// grow doubles a source's port slots, within the detector's budget.
func (d *Detector) grow(s *source) bool {
	c := cap(s.entries)
	n := min(max(4, 2*c), MaxKeptPorts)
	if n == c || d.kept+n-c > d.budget {
		return false
	}
	e := make([]entry, len(s.entries), n)
	copy(e, s.entries)
	s.entries = e
	d.kept += n - c
	return true
}

// recountLive recounts the ports probed in the last Window, at most every
// Window/16: between recounts, live counts ports probed since cutoff, so a
// port stays counted for up to 1/16 of a Window longer than the Window.
func (s *source) recountLive(off, win uint32) {
	if off < s.recount {
		return
	}
	s.cutoff = 0
	if off+1 > win {
		s.cutoff = off + 1 - win
	}
	s.live = 0
	for _, e := range s.entries {
		if e.at >= s.cutoff {
			s.live++
		}
	}
	s.recount = off + max(win/16, 1)
}

// danger is the level s is at now: the higher of the levels its distinct
// ports and its probes in the last Window reach.
func (d *Detector) danger(s *source, off uint32) uint8 {
	ports := int(s.live) + s.estimate(s.ovf, s.ovfOld, off, d.win)
	probes := s.estimate(s.pkt, s.pktOld, off, d.win)
	return uint8(max(level(ports, d.thr), level(probes, d.pthr)))
}

func level(n int, thr [5]int) int {
	l := 0
	for i, t := range thr {
		if t > 0 && n >= t {
			l = i + 1
		}
	}
	return l
}

// evidenceLine is the probe's line, after its prefix when the line does
// not carry it already (NFLOG's), cut at EvidenceLineLen and copied.
func evidenceLine(o event.Observation) string {
	line := o.Line
	if p := strings.TrimSpace(o.Prefix); p != "" && !strings.Contains(line, p) {
		line = p + " " + line
	}
	if len(line) > EvidenceLineLen {
		n := EvidenceLineLen
		for n > 0 && !utf8.RuneStart(line[n]) {
			n--
		}
		line = line[:n]
	}
	return strings.Clone(line)
}

// reason is a finding's summary, e.g. "SYN scan (nmap -sS) of 48 ports in
// 2.1s, danger 3, OS guess Linux".
func reason(s *source) string {
	var b strings.Builder
	for i, k := range kinds(s.types) {
		if i > 0 {
			b.WriteString(" + ")
		}
		b.WriteString(kindReasons[k])
	}
	took := time.Duration(s.last - s.first)
	if took >= time.Second {
		took = took.Round(100 * time.Millisecond)
	} else {
		took = took.Round(time.Millisecond)
	}
	if s.ports > 0 {
		fmt.Fprintf(&b, " of %d ports in %v", s.ports, took)
	} else {
		fmt.Fprintf(&b, ", %d probes in %v", s.packets, took)
	}
	fmt.Fprintf(&b, ", danger %d", s.peak)
	if s.os != osNone {
		fmt.Fprintf(&b, ", OS guess %s", osNames[s.os])
	}
	return b.String()
}

// kinds lists the kinds in types, in their order; a sweep hides the pings
// that are part of it.
func kinds(types uint16) []kind {
	if types&(1<<kindSweep) != 0 {
		types &^= 1 << kindPing
	}
	var out []kind
	for k := range numKinds {
		if types&(1<<k) != 0 {
			out = append(out, k)
		}
	}
	return out
}

// Scans returns the sources that reached danger 1 or more and probed
// within Recent before now, most dangerous first (then most ports, most
// probes, latest).
func (d *Detector) Scans(now time.Time) []Scan {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Scan
	d.srcs.Each(func(addr netip.Addr, s *source) {
		switch {
		case s.peak > 0 && now.UnixNano()-s.last <= d.recentNS:
			out = append(out, scanOf(addr, s))
		case s.prev != nil && now.UnixNano()-s.prev.Last.UnixNano() <= d.recentNS:
			out = append(out, *s.prev)
		}
	})
	slices.SortFunc(out, func(a, b Scan) int {
		return cmp.Or(
			cmp.Compare(b.Danger, a.Danger),
			cmp.Compare(b.PortCount, a.PortCount),
			cmp.Compare(b.Packets, a.Packets),
			b.Last.Compare(a.Last),
			a.Src.Compare(b.Src),
		)
	})
	return out
}

func scanOf(addr netip.Addr, s *source) Scan {
	sc := Scan{
		Src:       addr,
		First:     time.Unix(0, s.first),
		Last:      time.Unix(0, s.last),
		Packets:   int(s.packets),
		PortCount: int(s.ports),
		Danger:    int(s.peak),
		OSGuess:   osNames[s.os],
		Finding:   s.found,
	}
	for _, e := range s.entries {
		sc.Ports = append(sc.Ports, uint16(e.key))
	}
	slices.Sort(sc.Ports)
	sc.Ports = slices.Compact(sc.Ports)
	if len(sc.Ports) > MaxListedPorts {
		sc.Ports = slices.Clip(sc.Ports[:MaxListedPorts])
	}
	var tcp, udp, icmp, ip bool
	for _, k := range kinds(s.types) {
		sc.Types = append(sc.Types, kindLabels[k])
		switch k {
		case kindUDP:
			udp = true
		case kindSweep, kindPing, kindICMP:
			icmp = true
		case kindProto:
			ip = true
		default:
			tcp = true
		}
	}
	for _, p := range []struct {
		on   bool
		name string
	}{{tcp, "tcp"}, {udp, "udp"}, {icmp && addr.Is4(), "icmp"}, {icmp && !addr.Is4(), "icmpv6"}, {ip, "ip"}} {
		if p.on {
			sc.Protocols = append(sc.Protocols, p.name)
		}
	}
	return sc
}

// Top returns, for `moat status` (psad --Status), the n most dangerous
// recent scanners and the n ports probed by the most recent sources (any
// danger level, so the lone probes of internet background noise count).
func (d *Detector) Top(now time.Time, n int) (attackers []Scan, ports []PortCount) {
	attackers = d.Scans(now)
	if len(attackers) > n {
		attackers = attackers[:max(n, 0)]
	}
	d.mu.Lock()
	counts := make(map[uint32]int)
	d.srcs.Each(func(_ netip.Addr, s *source) {
		if now.UnixNano()-s.last > d.recentNS {
			return
		}
		for _, e := range s.entries {
			counts[e.key]++
		}
	})
	d.mu.Unlock()
	for k, c := range counts {
		pc := PortCount{Proto: "tcp", Port: uint16(k), Sources: c}
		if k>>16 != 0 {
			pc.Proto = "udp"
		}
		ports = append(ports, pc)
	}
	slices.SortFunc(ports, func(a, b PortCount) int {
		return cmp.Or(cmp.Compare(b.Sources, a.Sources), cmp.Compare(a.Port, b.Port), strings.Compare(a.Proto, b.Proto))
	})
	if len(ports) > n {
		ports = ports[:max(n, 0)]
	}
	return attackers, ports
}

// Stats returns the detector's counters.
func (d *Detector) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.stats
	st.Tracked = d.srcs.Len()
	st.KeptPorts = d.kept
	return st
}
