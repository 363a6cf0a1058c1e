package authfail

import (
	"strings"
	"time"
)

// ParseSyslogTime reads the timestamp a log line starts with (after an
// optional <PRI>, or the RFC 5424 version) or, for web servers, the first
// bracketed one. It handles
//
//   - BSD syslog "Jan  2 15:04:05" (with an optional fraction, weekday or
//     year): without a year, the year is the one that puts the time
//     nearest to now, in now's location (SECURITY.md R14, A12); Feb 29 is
//     only ever placed in a leap year, never normalised to Mar 1;
//   - ISO 8601 / RFC 3339 "2006-01-02T15:04:05.000-07:00", also with a
//     space for the T, a comma for the dot, or no zone (now's location);
//   - nginx and apache access logs "[02/Jan/2006:15:04:05 -0700]";
//   - apache error logs "[Mon Jan 02 15:04:05.000 2006]" and nginx error
//     logs "2006/01/02 15:04:05";
//   - TAI64N labels "@4000000063b0…" (daemontools, dovecot) and MySQL's
//     "060102 15:04:05".
func ParseSyslogTime(line string, now time.Time) (time.Time, bool) {
	s := line
	if len(s) > 2 && s[0] == '<' {
		if i := strings.IndexByte(s, '>'); i > 1 && i < 5 {
			s = s[i+1:]
			if strings.HasPrefix(s, "1 ") {
				s = s[2:]
			}
		}
	}
	if t, ok := parseISO(s, now.Location()); ok {
		return t, true
	}
	if t, ok := parseBSD(s, now); ok {
		return t, true
	}
	if t, ok := parseSlashed(s, now.Location()); ok {
		return t, true
	}
	if t, ok := parseTAI64N(s); ok {
		return t, true
	}
	if t, ok := parseYYMMDD(s, now.Location()); ok {
		return t, true
	}
	if i := strings.IndexByte(line, '['); i >= 0 && i < 256 {
		rest := line[i+1:]
		if t, ok := parseCLF(rest); ok {
			return t, true
		}
		if t, ok := parseBSD(rest, now); ok {
			return t, true
		}
	}
	return time.Time{}, false
}

func num(s string, i, n int) (int, bool) {
	if i+n > len(s) {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s[i : i+n]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// clock parses "15:04:05" (the hour may have one digit) and an optional
// fraction at s[i:], returning the index after it.
func clock(s string, i int) (h, m, sec, nsec, end int, ok bool) {
	hd := 2
	if h, ok = num(s, i, 2); !ok {
		if h, ok = num(s, i, 1); !ok {
			return
		}
		hd = 1
	}
	i += hd
	if i >= len(s) || s[i] != ':' {
		return 0, 0, 0, 0, 0, false
	}
	if m, ok = num(s, i+1, 2); !ok || i+3 >= len(s) || s[i+3] != ':' {
		return 0, 0, 0, 0, 0, false
	}
	if sec, ok = num(s, i+4, 2); !ok {
		return
	}
	i += 6
	if i+1 < len(s) && (s[i] == '.' || s[i] == ',') && s[i+1] >= '0' && s[i+1] <= '9' {
		i++
		scale := 100000000
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			nsec += int(s[i]-'0') * scale
			scale /= 10
			i++
		}
	}
	if h > 23 || m > 59 || sec > 60 {
		return 0, 0, 0, 0, 0, false
	}
	return h, m, sec, nsec, i, true
}

func valid(y, mo, d int, t time.Time) bool {
	return t.Year() == y && int(t.Month()) == mo && t.Day() == d
}

func parseISO(s string, loc *time.Location) (time.Time, bool) {
	y, ok1 := num(s, 0, 4)
	mo, ok2 := num(s, 5, 2)
	d, ok3 := num(s, 8, 2)
	if !ok1 || !ok2 || !ok3 || s[4] != '-' || s[7] != '-' || len(s) < 11 || (s[10] != 'T' && s[10] != ' ') {
		return time.Time{}, false
	}
	i := 11
	if s[10] == ' ' && i < len(s) && s[i] == ' ' {
		i++
	}
	h, m, sec, nsec, i, ok := clock(s, i)
	if !ok {
		return time.Time{}, false
	}
	zone := loc
	switch {
	case i < len(s) && s[i] == 'Z':
		zone = time.UTC
	case i < len(s) && (s[i] == '+' || s[i] == '-'):
		zh, ok := num(s, i+1, 2)
		if !ok {
			return time.Time{}, false
		}
		zm := 0
		if i+3 < len(s) && s[i+3] == ':' {
			zm, ok = num(s, i+4, 2)
		} else if v, ok2 := num(s, i+3, 2); ok2 {
			zm = v
		}
		if !ok {
			return time.Time{}, false
		}
		off := zh*3600 + zm*60
		if s[i] == '-' {
			off = -off
		}
		zone = time.FixedZone("", off)
	}
	t := time.Date(y, time.Month(mo), d, h, m, sec, nsec, zone)
	return t, valid(y, mo, d, t)
}

func monthOf(s string) int {
	if len(s) < 3 {
		return 0
	}
	for i, m := range months {
		if s[:3] == m {
			return i + 1
		}
	}
	return 0
}

func parseBSD(s string, now time.Time) (time.Time, bool) {
	if len(s) > 4 && s[3] == ' ' && monthOf(s[4:]) > 0 {
		for _, w := range weekdays {
			if s[:3] == w {
				s = s[4:]
				break
			}
		}
	}
	mo := monthOf(s)
	if mo == 0 || len(s) < 5 || s[3] != ' ' {
		return time.Time{}, false
	}
	i := 4
	if s[i] == ' ' {
		i++
	}
	dd := 2
	d, ok := num(s, i, 2)
	if !ok {
		if d, ok = num(s, i, 1); !ok {
			return time.Time{}, false
		}
		dd = 1
	}
	i += dd
	if i >= len(s) || s[i] != ' ' || d < 1 || d > 31 {
		return time.Time{}, false
	}
	h, m, sec, nsec, i, ok := clock(s, i+1)
	if !ok {
		return time.Time{}, false
	}
	loc := now.Location()
	if i+5 <= len(s) && s[i] == ' ' {
		if y, ok := num(s, i+1, 4); ok && (i+5 == len(s) || s[i+5] == ' ' || s[i+5] == ']') {
			t := time.Date(y, time.Month(mo), d, h, m, sec, nsec, loc)
			return t, valid(y, mo, d, t)
		}
	}
	// No year: the one nearest to now. Any date but Feb 29 exists every
	// year, so the nearest is last year, this year or next year; Feb 29
	// exists only in leap years, so look up to four years either way.
	span := 1
	if mo == 2 && d == 29 {
		span = 4
	}
	var best time.Time
	var bestDist time.Duration = -1
	for y := now.Year() - span; y <= now.Year()+span; y++ {
		t := time.Date(y, time.Month(mo), d, h, m, sec, nsec, loc)
		if !valid(y, mo, d, t) {
			continue
		}
		dist := t.Sub(now)
		if dist < 0 {
			dist = -dist
		}
		if bestDist < 0 || dist < bestDist {
			best, bestDist = t, dist
		}
	}
	return best, bestDist >= 0
}

// parseSlashed reads nginx's error-log "2006/01/02 15:04:05".
func parseSlashed(s string, loc *time.Location) (time.Time, bool) {
	y, ok1 := num(s, 0, 4)
	mo, ok2 := num(s, 5, 2)
	d, ok3 := num(s, 8, 2)
	if !ok1 || !ok2 || !ok3 || s[4] != '/' || s[7] != '/' || len(s) < 11 || s[10] != ' ' {
		return time.Time{}, false
	}
	h, m, sec, nsec, _, ok := clock(s, 11)
	if !ok {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(mo), d, h, m, sec, nsec, loc)
	return t, valid(y, mo, d, t)
}

// parseCLF reads "02/Jan/2006:15:04:05 -0700]".
func parseCLF(s string) (time.Time, bool) {
	d, ok := num(s, 0, 2)
	if !ok || len(s) < 26 || s[2] != '/' || s[6] != '/' || s[11] != ':' {
		return time.Time{}, false
	}
	mo := monthOf(s[3:])
	y, ok2 := num(s, 7, 4)
	h, m, sec, _, i, ok3 := clock(s, 12)
	if mo == 0 || !ok2 || !ok3 || i+6 > len(s) || s[i] != ' ' || (s[i+1] != '+' && s[i+1] != '-') {
		return time.Time{}, false
	}
	zh, ok4 := num(s, i+2, 2)
	zm, ok5 := num(s, i+4, 2)
	if !ok4 || !ok5 {
		return time.Time{}, false
	}
	off := zh*3600 + zm*60
	if s[i+1] == '-' {
		off = -off
	}
	t := time.Date(y, time.Month(mo), d, h, m, sec, 0, time.FixedZone("", off))
	return t, valid(y, mo, d, t)
}

// parseTAI64N reads "@" and 24 hex digits: 2^62 + Unix seconds, then
// nanoseconds (leap seconds ignored, as multilog does).
func parseTAI64N(s string) (time.Time, bool) {
	if len(s) < 25 || s[0] != '@' {
		return time.Time{}, false
	}
	var secs, nsec uint64
	for i := 1; i < 25; i++ {
		v := hexVal(s[i])
		if v < 0 {
			return time.Time{}, false
		}
		if i <= 16 {
			secs = secs<<4 | uint64(v)
		} else {
			nsec = nsec<<4 | uint64(v)
		}
	}
	if secs < 1<<62 || secs-1<<62 > 1<<40 || nsec >= 1e9 {
		return time.Time{}, false
	}
	return time.Unix(int64(secs-1<<62), int64(nsec)), true
}

// parseYYMMDD reads MySQL's "060102 15:04:05" (the hour may have one
// digit and be padded with a space).
func parseYYMMDD(s string, loc *time.Location) (time.Time, bool) {
	y, ok1 := num(s, 0, 2)
	mo, ok2 := num(s, 2, 2)
	d, ok3 := num(s, 4, 2)
	if !ok1 || !ok2 || !ok3 || len(s) < 8 || s[6] != ' ' {
		return time.Time{}, false
	}
	i := 7
	if s[i] == ' ' {
		i++
	}
	h, m, sec, nsec, _, ok := clock(s, i)
	if !ok {
		return time.Time{}, false
	}
	t := time.Date(2000+y, time.Month(mo), d, h, m, sec, nsec, loc)
	return t, valid(2000+y, mo, d, t)
}
