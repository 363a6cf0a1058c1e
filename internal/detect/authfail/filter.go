package authfail

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"strings"
	"unsafe"
)

// MaxLineLen is the longest line a filter reads; longer lines never match
// (SECURITY.md R2: sensors cut lines, filters refuse what is left over).
const MaxLineLen = 8192

// Filter extracts offenders' addresses from log lines. It is immutable
// after it is built and safe for concurrent use.
type Filter struct {
	name, mode string
	prefix     *prefix
	rules      []*rule
	ignore     []*regexp.Regexp
	byFirst    [256][]int // rule indexes to try, by the message's first byte, in order
	multiline  bool       // some rule needs a Session
	rootOnly   bool       // the daemon logs as root (journald _UID must be 0)
}

// rule kinds.
const (
	kindFail   = iota // a failure
	kindHelper        // not a failure by itself: tells the connection its address or user
)

type rule struct {
	label  string
	src    string
	re     *regexp.Regexp
	lit    string // literal the message must start with
	host   int    // capture index of <HOST> in the submatch slice (2*n), or -1
	user   int    // capture index of (?P<user>…), or -1
	alt    int    // capture index of (?P<alt>…), or -1 (used when user is empty)
	kind   int
	forget bool   // the connection ends here
	gained bool   // a success: forgets helper failures unless several users were tried
	soft   bool   // a helper that records a failed attempt (PAM failure, failed publickey)
	anchor string // exception (c) of the lint: checked per line
	fast   fastFunc
}

// match is one rule's result on a line.
type match struct {
	rule               *rule
	msgStart           int // where the message starts in the line
	hostStart, hostEnd int // in the message; -1 when the rule has no <HOST>
	userStart, userEnd int // in the message; -1 when none
	badAddr            bool
	addr               netip.Addr
}

// Compile builds a filter from fail2ban-style patterns (Go regexp syntax).
//
// Each failregex must contain <HOST> exactly once and pass the load-time
// lint (SECURITY.md R1): it must start with ^, must not have a top-level
// alternation or an optional or repeated <HOST>, and must not have a
// greedy or lazy wildcard that can span spaces (.*, .+, [^"]*, (?: \S+)*)
// before <HOST>, unless the pattern ends with $ and nothing after <HOST>
// can span spaces, or the wildcard is a negated class followed by the
// delimiter it excludes ("[^"]*"). A refused pattern gives a
// *PatternError naming the pattern and the column.
//
// Patterns are matched against the message after prefix; ^ is the start
// of the message. prefix is "" (the whole line), a regexp matched at the
// start of the line, or a syslog macro optionally followed by such a
// regexp:
//
//	<SYSLOG:sshd|sshd-session>   a syslog header (timestamp, host, tag
//	                             with optional [pid]) whose daemon tag is
//	                             one of these names (or matches them as a
//	                             regexp), parsed by hand
//	<SYSLOG?:nginx>              the same, but lines without one are read
//	                             from their start
//
// ignoreregex patterns are ordinary regexps over the same message: a line
// that matches one is never a failure. A named group (?P<user>…) is the
// user name. A compiled filter has no multi-line rules: each line is
// judged alone.
func Compile(name string, failregex, ignoreregex []string, prefix string) (*Filter, error) {
	if len(failregex) == 0 {
		return nil, fmt.Errorf("authfail: filter %q: no failregex", name)
	}
	specs := make([]ruleSpec, len(failregex))
	for i, p := range failregex {
		specs[i] = ruleSpec{pattern: p, kind: kindFail}
	}
	f, err := build(name, "", prefix, specs, ignoreregex, false)
	if err != nil {
		return nil, fmt.Errorf("compile filter %q: %w", name, err)
	}
	return f, nil
}

// ruleSpec describes one rule of a filter being built.
type ruleSpec struct {
	label    string
	pattern  string
	kind     int
	hostless bool // builtin: the address comes from the connection
	forget   bool
	gained   bool
	soft     bool
	anchor   string
	fast     fastFunc
}

func build(name, mode, prefixSrc string, specs []ruleSpec, ignore []string, builtin bool) (*Filter, error) {
	f := &Filter{name: name, mode: mode}
	if prefixSrc != "" {
		p, err := parsePrefix(prefixSrc)
		if err != nil {
			if pe, ok := err.(*PatternError); ok {
				pe.Filter = name
			}
			return nil, err
		}
		f.prefix = p
	}
	for i, s := range specs {
		if !builtin && (s.hostless || s.anchor != "" || s.kind != kindFail) {
			return nil, fmt.Errorf("authfail: filter %q: rule %d uses builtin-only options", name, i)
		}
		if perr := lintPattern(s.pattern, lintOpts{hostless: s.hostless, anchor: s.anchor}); perr != nil {
			perr.Filter = name
			return nil, perr
		}
		r, err := compileRule(s)
		if err != nil {
			return nil, &PatternError{Filter: name, Pattern: s.pattern, Col: 1, Msg: err.Error()}
		}
		if r.label == "" {
			r.label = fmt.Sprintf("%s/%d", name, i+1)
		}
		if r.kind != kindFail || r.host < 0 || r.soft || r.gained {
			f.multiline = true
		}
		f.rules = append(f.rules, r)
	}
	for _, p := range ignore {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, &PatternError{Filter: name, Pattern: p, Col: 1, Msg: fmt.Sprintf("invalid ignoreregex: %v", err)}
		}
		f.ignore = append(f.ignore, re)
	}
	for b := 0; b < 256; b++ {
		for i, r := range f.rules {
			if r.lit == "" || r.lit[0] == byte(b) {
				f.byFirst[b] = append(f.byFirst[b], i)
			}
		}
	}
	return f, nil
}

func compileRule(s ruleSpec) (*rule, error) {
	expanded := strings.Replace(s.pattern, hostToken, hostRE, 1)
	re, err := regexp.Compile(expanded)
	if err != nil {
		return nil, err
	}
	r := &rule{
		label: s.label, src: s.pattern, re: re,
		host: -1, user: -1, alt: -1,
		kind: s.kind, forget: s.forget, gained: s.gained, soft: s.soft,
		anchor: s.anchor, fast: s.fast,
	}
	for i, n := range re.SubexpNames() {
		switch n {
		case hostGroup:
			r.host = 2 * i
		case "user":
			r.user = 2 * i
		case "alt":
			r.alt = 2 * i
		}
	}
	r.lit = literalPrefix(expanded)
	return r, nil
}

// literalPrefix is the literal text every match of an anchored pattern
// starts with, used to skip rules without running them.
func literalPrefix(p string) string {
	re, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return ""
	}
	var sb strings.Builder
	var walk func(re *syntax.Regexp) bool // false: stop
	walk = func(re *syntax.Regexp) bool {
		switch re.Op {
		case syntax.OpBeginText, syntax.OpEmptyMatch:
			return true
		case syntax.OpLiteral:
			if re.Flags&syntax.FoldCase != 0 {
				return false
			}
			for _, r := range re.Rune {
				sb.WriteRune(r)
			}
			return true
		case syntax.OpCapture:
			return walk(re.Sub[0])
		case syntax.OpConcat:
			for _, s := range re.Sub {
				if !walk(s) {
					return false
				}
			}
			return true
		}
		return false
	}
	walk(re)
	return sb.String()
}

// Name is the filter's name; Mode its mode ("" for compiled filters).
func (f *Filter) Name() string { return f.name }

// Mode is the mode a builtin filter was built for.
func (f *Filter) Mode() string { return f.mode }

// Names lists the filter's rules, in the order they are tried, as
// "filter/label".
func (f *Filter) Names() []string {
	out := make([]string, len(f.rules))
	for i, r := range f.rules {
		out[i] = r.label
	}
	return out
}

// daemons lists the daemon names of a syslog prefix (for trusted-field
// checks), or nil.
func (f *Filter) daemons() []string { return f.prefix.daemons() }

// Match reports the address of the offender when line is, by itself, a
// failure: a line the filter needs more lines to judge (sshd's
// "Disconnecting: Too many authentication failures" has no address) is
// not one. Use a Session to follow connections.
func (f *Filter) Match(line string) (netip.Addr, bool) {
	return f.MatchBytes(unsafe.Slice(unsafe.StringData(line), len(line)))
}

// MatchBytes is Match on a byte slice; it does not retain or modify line.
func (f *Filter) MatchBytes(line []byte) (netip.Addr, bool) {
	m, _, _, ok := f.find(line)
	if !ok || m.rule.kind != kindFail || m.hostStart < 0 || m.badAddr {
		return netip.Addr{}, false
	}
	return m.addr, true
}

// find runs the prefix and the rules over line. ok is false when no rule
// matched (or the line is ignored).
func (f *Filter) find(line []byte) (m match, keyStart, keyEnd int, ok bool) {
	if len(line) > MaxLineLen || len(line) == 0 {
		return m, 0, 0, false
	}
	msgStart, ks, ke, ok := f.prefix.split(line)
	if !ok || msgStart >= len(line) {
		return m, 0, 0, false
	}
	msg := line[msgStart:]
	m.msgStart = msgStart
	// \t \n \f \r make the fast paths step aside: only regexps see them.
	plain := bytes.IndexByte(msg, '\n') < 0 && bytes.IndexByte(msg, '\t') < 0 &&
		bytes.IndexByte(msg, '\r') < 0 && bytes.IndexByte(msg, '\f') < 0
	for _, i := range f.byFirst[msg[0]] {
		r := f.rules[i]
		if !hasPrefix(msg, r.lit) {
			continue
		}
		if r.fast != nil && plain {
			res := r.fast(msg)
			switch res.status {
			case fastNo:
				continue
			case fastYes:
				m = match{rule: r, msgStart: msgStart, hostStart: res.host[0], hostEnd: res.host[1], userStart: res.user[0], userEnd: res.user[1]}
				return f.finish(m, msg, ks, ke)
			}
		}
		loc := r.re.FindSubmatchIndex(msg)
		if loc == nil {
			continue
		}
		m = match{rule: r, msgStart: msgStart, hostStart: -1, hostEnd: -1, userStart: -1, userEnd: -1}
		if r.host >= 0 {
			m.hostStart, m.hostEnd = loc[r.host], loc[r.host+1]
		}
		if r.user >= 0 && loc[r.user] >= 0 && loc[r.user+1] > loc[r.user] {
			m.userStart, m.userEnd = loc[r.user], loc[r.user+1]
		} else if r.alt >= 0 && loc[r.alt] >= 0 && loc[r.alt+1] > loc[r.alt] {
			m.userStart, m.userEnd = loc[r.alt], loc[r.alt+1]
		}
		return f.finish(m, msg, ks, ke)
	}
	return m, 0, 0, false
}

func (f *Filter) finish(m match, msg []byte, ks, ke int) (match, int, int, bool) {
	r := m.rule
	if r.anchor != "" && m.hostEnd >= 0 && bytes.Contains(msg[m.hostEnd:], unsafe.Slice(unsafe.StringData(r.anchor), len(r.anchor))) {
		return m, 0, 0, false // a second copy after the address: not the daemon's line
	}
	for _, ig := range f.ignore {
		if ig.Match(msg) {
			return m, 0, 0, false
		}
	}
	if m.hostStart >= 0 {
		a, ok := parseAddr(msg[m.hostStart:m.hostEnd])
		if !ok {
			m.badAddr = true
		}
		m.addr = a
	}
	return m, ks, ke, true
}
