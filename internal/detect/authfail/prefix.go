package authfail

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// prefix finds where a line's message starts and which connection (syslog
// host, daemon tag and pid) wrote it.
//
// A prefix is written as an optional syslog macro followed by an optional
// Go regexp:
//
//	<SYSLOG:names>   a syslog header is required; names is a |-separated
//	                 list of daemon tags (or a regexp) the tag must equal
//	<SYSLOG?:names>  the same, but a line without a syslog header is taken
//	                 from its start
//	regexp           matched at the start of the message (or of the line,
//	                 without a macro), implicitly anchored
//
// The syslog header is parsed by hand, which is much faster than a regexp:
// an optional <PRI>, an optional timestamp (BSD "Jan  2 15:04:05", ISO 8601
// / RFC 3339, TAI64N "@4000…", or "Mon Jan  2 15:04:05 2006"), an optional
// host name, and the tag: "name[pid]:", "name:", "[name]:", "[name]" or
// "name[pid]". RFC 5424 headers ("<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD")
// are read too. After the tag, a Solaris "[ID n facility.level] " and a
// kernel "kernel:[ 123.456] " marker are skipped.
type prefix struct {
	syslog   bool
	optional bool
	names    []string       // literal daemon names, or nil when nameRE is set
	nameRE   *regexp.Regexp // daemon names as a regexp (anchored both ends)
	re       *regexp.Regexp // the rest, anchored at the message start; may be nil
	strip    [][]string     // builtin only: literal preambles removed in order
	src      string
}

func parsePrefix(src string) (*prefix, error) {
	p := &prefix{src: src}
	rest := src
	for _, m := range []string{"<SYSLOG:", "<SYSLOG?:"} {
		if !strings.HasPrefix(src, m) {
			continue
		}
		p.syslog = true
		p.optional = m == "<SYSLOG?:"
		depth, end := 0, -1
		for i := len(m); i < len(src) && end < 0; i++ {
			switch src[i] {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				depth--
			case '>':
				if depth == 0 {
					end = i
				}
			}
		}
		if end < 0 {
			return nil, &PatternError{Pattern: src, Col: 1, Msg: "unterminated " + m + "…> macro"}
		}
		names := src[len(m):end]
		if names == "" {
			return nil, &PatternError{Pattern: src, Col: len(m) + 1, Msg: "empty daemon name list"}
		}
		literal := true
		for _, n := range strings.Split(names, "|") {
			if n == "" || regexp.QuoteMeta(n) != n {
				literal = false
			}
		}
		if literal {
			p.names = strings.Split(names, "|")
		} else {
			re, err := regexp.Compile(`^(?:` + names + `)$`)
			if err != nil {
				return nil, &PatternError{Pattern: src, Col: len(m) + 1, Msg: fmt.Sprintf("daemon names: %v", err)}
			}
			p.nameRE = re
		}
		rest = src[end+1:]
		break
	}
	if rest != "" {
		off := len(src) - len(rest)
		if strings.Contains(rest, hostToken) {
			return nil, &PatternError{Pattern: src, Col: off + strings.Index(rest, hostToken) + 1, Msg: "the prefix must not contain " + hostToken}
		}
		if err := lintPrefix(rest, off); err != nil {
			err.Pattern = src
			return nil, err
		}
		re, err := regexp.Compile(`^(?:` + strings.TrimPrefix(rest, "^") + `)`)
		if err != nil {
			return nil, &PatternError{Pattern: src, Col: off + 1, Msg: err.Error()}
		}
		p.re = re
	}
	return p, nil
}

// daemons lists the literal daemon names, for trusted-field checks.
func (p *prefix) daemons() []string {
	if p == nil {
		return nil
	}
	return p.names
}

func (p *prefix) nameOK(name []byte) bool {
	if p.nameRE != nil {
		return p.nameRE.Match(name)
	}
	for _, n := range p.names {
		if string(name) == n {
			return true
		}
	}
	return false
}

// split returns where the message starts and the connection key span.
func (p *prefix) split(line []byte) (msg, keyStart, keyEnd int, ok bool) {
	if p == nil {
		return 0, 0, 0, true
	}
	if p.syslog {
		msg, keyStart, keyEnd, ok = p.syslogHeader(line)
		if !ok {
			if !p.optional {
				return 0, 0, 0, false
			}
			msg, keyStart, keyEnd = 0, 0, 0
		}
	}
	if p.re != nil {
		loc := p.re.FindIndex(line[msg:])
		if loc == nil {
			return 0, 0, 0, false
		}
		msg += loc[1]
	}
	for _, set := range p.strip {
		for _, s := range set {
			if hasPrefix(line[msg:], s) {
				msg += len(s)
				break
			}
		}
	}
	return msg, keyStart, keyEnd, true
}

// hasPrefix reports whether b starts with s, without converting.
func hasPrefix(b []byte, s string) bool {
	return len(b) >= len(s) && string(b[:len(s)]) == s
}

// tokenEnd returns the end of the space-delimited token starting at i.
func tokenEnd(b []byte, i int) int {
	for i < len(b) && b[i] != ' ' {
		i++
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digitsAt(b []byte, i, n int) bool {
	if i+n > len(b) {
		return false
	}
	for _, c := range b[i : i+n] {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
var weekdays = [...]string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}

// monthAt returns the month (1-12) named at b[i:i+3], or 0.
func monthAt(b []byte, i int) int {
	if i+3 > len(b) {
		return 0
	}
	switch string(b[i : i+3]) {
	case "Jan":
		return 1
	case "Feb":
		return 2
	case "Mar":
		return 3
	case "Apr":
		return 4
	case "May":
		return 5
	case "Jun":
		return 6
	case "Jul":
		return 7
	case "Aug":
		return 8
	case "Sep":
		return 9
	case "Oct":
		return 10
	case "Nov":
		return 11
	case "Dec":
		return 12
	}
	return 0
}

func weekdayAt(b []byte, i int) bool {
	if i+4 > len(b) || b[i+3] != ' ' {
		return false
	}
	switch string(b[i : i+3]) {
	case "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun":
		return true
	}
	return false
}

// clockAt reports the end of "hh:mm:ss" (hours may have one digit) and an
// optional fraction at i, or -1.
func clockAt(b []byte, i int) int {
	h := 2
	if !digitsAt(b, i, 2) {
		if !digitsAt(b, i, 1) {
			return -1
		}
		h = 1
	}
	j := i + h
	if j+6 > len(b) || b[j] != ':' || !digitsAt(b, j+1, 2) || b[j+3] != ':' || !digitsAt(b, j+4, 2) {
		return -1
	}
	j += 6
	if j < len(b) && (b[j] == '.' || b[j] == ',') && j+1 < len(b) && isDigit(b[j+1]) {
		j++
		for j < len(b) && isDigit(b[j]) {
			j++
		}
	}
	return j
}

// bsdStamp reports the end of a BSD syslog timestamp ("Jan  2 15:04:05",
// optionally with a weekday before and a year after) at i, or -1.
func bsdStamp(b []byte, i int) int {
	if weekdayAt(b, i) && monthAt(b, i+4) > 0 {
		i += 4
	}
	if monthAt(b, i) == 0 || i+3 >= len(b) || b[i+3] != ' ' {
		return -1
	}
	j := i + 4
	if j < len(b) && b[j] == ' ' {
		j++
	}
	d := j
	for j < len(b) && isDigit(b[j]) && j-d < 2 {
		j++
	}
	if j == d || j >= len(b) || b[j] != ' ' {
		return -1
	}
	j = clockAt(b, j+1)
	if j < 0 {
		return -1
	}
	if j+5 <= len(b) && b[j] == ' ' && digitsAt(b, j+1, 4) && (j+5 == len(b) || b[j+5] == ' ') {
		j += 5
	}
	return j
}

// isoStamp reports the end of an ISO 8601 timestamp at i ("2006-01-02T15:04:05.000+07:00",
// "2006-01-02 15:04:05,000"), or -1.
func isoStamp(b []byte, i int) int {
	if !digitsAt(b, i, 4) || i+10 > len(b) || b[i+4] != '-' || !digitsAt(b, i+5, 2) || b[i+7] != '-' || !digitsAt(b, i+8, 2) {
		return -1
	}
	j := i + 10
	if j >= len(b) || (b[j] != 'T' && b[j] != ' ') {
		return -1
	}
	k := j + 1
	if b[j] == ' ' && k < len(b) && b[k] == ' ' {
		k++
	}
	j = clockAt(b, k)
	if j < 0 {
		return -1
	}
	if j < len(b) && b[j] == 'Z' {
		return j + 1
	}
	if j+3 <= len(b) && (b[j] == '+' || b[j] == '-') && digitsAt(b, j+1, 2) {
		j += 3
		if j+3 <= len(b) && b[j] == ':' && digitsAt(b, j+1, 2) {
			j += 3
		} else if digitsAt(b, j, 2) {
			j += 2
		}
	}
	return j
}

// skipStamp skips a timestamp and the spaces after it.
func skipStamp(b []byte, i int) int {
	j := bsdStamp(b, i)
	if j < 0 {
		j = isoStamp(b, i)
	}
	if j < 0 && i < len(b) && b[i] == '@' && i+25 <= len(b) && string(b[i+1:i+5]) == "4000" {
		j = i + 25
	}
	if j < 0 || (j < len(b) && b[j] != ' ') {
		return i
	}
	for j < len(b) && b[j] == ' ' {
		j++
	}
	return j
}

// tag parses a syslog tag token and returns the daemon name in it.
func tag(t []byte) (name []byte, ok bool) {
	if len(t) == 0 {
		return nil, false
	}
	colon := t[len(t)-1] == ':'
	if colon {
		t = t[:len(t)-1]
	}
	if len(t) >= 3 && t[0] == '[' && t[len(t)-1] == ']' {
		return t[1 : len(t)-1], true
	}
	if i := bytes.IndexByte(t, '['); i > 0 && t[len(t)-1] == ']' {
		if !digitsAt(t, i+1, len(t)-i-2) || len(t)-i-2 == 0 {
			return nil, false
		}
		return t[:i], true
	}
	if !colon || len(t) == 0 || bytes.IndexByte(t, '[') >= 0 {
		return nil, false
	}
	return t, true
}

func (p *prefix) syslogHeader(b []byte) (msg, keyStart, keyEnd int, ok bool) {
	i := 0
	if len(b) > 2 && b[0] == '<' {
		j := 1
		for j < len(b) && j < 5 && isDigit(b[j]) {
			j++
		}
		if j > 1 && j < len(b) && b[j] == '>' {
			i = j + 1
			if i+1 < len(b) && b[i] == '1' && b[i+1] == ' ' {
				return p.rfc5424(b, i+2)
			}
		}
	}
	i = skipStamp(b, i)
	t1 := tokenEnd(b, i)
	if name, ok := tag(b[i:t1]); ok && p.nameOK(name) {
		return p.afterTag(b, t1), i, t1, true
	}
	if t1 >= len(b) {
		return 0, 0, 0, false
	}
	t2 := tokenEnd(b, t1+1)
	if name, ok := tag(b[t1+1 : t2]); ok && p.nameOK(name) {
		return p.afterTag(b, t2), i, t2, true
	}
	return 0, 0, 0, false
}

func (p *prefix) afterTag(b []byte, i int) int {
	if i < len(b) && b[i] == ' ' {
		i++
	}
	if hasPrefix(b[i:], "[ID ") {
		if j := bytes.IndexByte(b[i:], ']'); j > 0 && i+j+1 < len(b) && b[i+j+1] == ' ' {
			i += j + 2
		}
	}
	if hasPrefix(b[i:], "kernel:") {
		j := i + len("kernel:")
		if j < len(b) && b[j] == ' ' {
			j++
		}
		if j < len(b) && b[j] == '[' {
			j++
			for j < len(b) && b[j] == ' ' {
				j++
			}
			d := j
			for j < len(b) && (isDigit(b[j]) || b[j] == '.') {
				j++
			}
			if j > d && j < len(b) && b[j] == ']' {
				j++
				if j < len(b) && b[j] == ':' {
					j++
				}
				if j < len(b) && b[j] == ' ' {
					i = j + 1
				}
			}
		}
	}
	return i
}

// rfc5424 parses "TIMESTAMP HOST APP PROCID MSGID SD MSG" starting at i.
func (p *prefix) rfc5424(b []byte, i int) (msg, keyStart, keyEnd int, ok bool) {
	var field [5][2]int
	for f := range field {
		e := tokenEnd(b, i)
		if e == i || e >= len(b) {
			return 0, 0, 0, false
		}
		field[f] = [2]int{i, e}
		i = e + 1
	}
	if !p.nameOK(b[field[2][0]:field[2][1]]) {
		return 0, 0, 0, false
	}
	// structured data: "-" or one or more [id param="value" ...]
	switch {
	case i < len(b) && b[i] == '-':
		i++
	case i < len(b) && b[i] == '[':
		for i < len(b) && b[i] == '[' {
			i++
			quoted := false
			for ; i < len(b); i++ {
				c := b[i]
				if quoted {
					if c == '\\' {
						i++
					} else if c == '"' {
						quoted = false
					}
					continue
				}
				if c == '"' {
					quoted = true
				} else if c == ']' {
					break
				}
			}
			if i >= len(b) {
				return 0, 0, 0, false
			}
			i++
		}
	default:
		return 0, 0, 0, false
	}
	if i < len(b) && b[i] == ' ' {
		i++
	}
	if hasPrefix(b[i:], "\xef\xbb\xbf") {
		i += 3
	}
	return i, field[1][0], field[3][1], true
}
