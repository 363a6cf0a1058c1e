package authfail

import (
	"errors"
	"fmt"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// hostToken marks the offender's address in a pattern.
const hostToken = "<HOST>"

// PatternError is a pattern refused when a filter loads.
type PatternError struct {
	Filter  string // the filter, when known
	Pattern string // the pattern as written
	Col     int    // 1-based byte column in Pattern
	Msg     string
}

func (e *PatternError) Error() string {
	if e.Filter != "" {
		return fmt.Sprintf("authfail: filter %q: pattern %q: column %d: %s", e.Filter, e.Pattern, e.Col, e.Msg)
	}
	return fmt.Sprintf("authfail: pattern %q: column %d: %s", e.Pattern, e.Col, e.Msg)
}

// The load-time lint (SECURITY.md R1). A failregex is refused when:
//
//   - it has no <HOST>, or more than one, or <HOST> sits inside a repeated
//     or optional group (the address would be optional);
//   - it is not anchored: it must start with ^ (start of the message) and
//     must not have a top-level alternation;
//   - it has a wide wildcard before <HOST>, unless one of the exceptions
//     below applies.
//
// A wide wildcard is a repetition (*, +, {n,}, {n,m} with m > 1; greedy or
// lazy) of something that can match both a whitespace and a
// non-whitespace character: .*, .+, [^"]*, (?: \S+)* are wide; \S+, \d+,
// \s*, [a-z]+ are not, because attacker text cannot span a field boundary
// through them. Before <HOST> a wide wildcard can swallow an
// attacker-written field that contains a fake "from 192.0.2.66" and let
// the address come from it (CVE-2006-6302, CVE-2013-2178, CVE-2013-7176).
// It is accepted only when
//
//	(a) the pattern ends with $ and there is no wide wildcard after <HOST>:
//	    the text after the address is then a fixed daemon-written suffix,
//	    so the address's position is fixed from the end of the line and
//	    greedy matching finds the daemon's copy, which comes last (this is
//	    fail2ban's RE_WRONG_GREED rule); or
//	(b) it is a negated class [^x…] immediately followed by a literal x it
//	    excludes (a delimited field such as "[^"]*"): the author asserts
//	    that the daemon escapes that delimiter in the field; or
//	(c) built-in filters only: the rule names the literal that precedes
//	    <HOST> as its anchor, and each line is checked at match time to
//	    have no further copy of the anchor after the address (the text
//	    after the address is daemon-written, so the daemon's copy is the
//	    last one).
type lintOpts struct {
	hostless bool   // builtin: the rule takes its address from the connection
	anchor   string // builtin: exception (c)
}

func lintPattern(p string, o lintOpts) *PatternError {
	perr := func(col int, format string, a ...any) *PatternError {
		return &PatternError{Pattern: p, Col: col, Msg: fmt.Sprintf(format, a...)}
	}
	hostAt := strings.Index(p, hostToken)
	switch {
	case hostAt < 0 && !o.hostless:
		return perr(1, "no %s: a failure pattern must capture the offender's address", hostToken)
	case hostAt >= 0 && o.hostless:
		return perr(hostAt+1, "a connection-scoped rule must not have %s", hostToken)
	case hostAt >= 0 && strings.Contains(p[hostAt+len(hostToken):], hostToken):
		return perr(hostAt+len(hostToken)+strings.Index(p[hostAt+len(hostToken):], hostToken)+1, "more than one %s", hostToken)
	}
	for _, g := range []string{"(?P<" + hostGroup + ">", "(?<" + hostGroup + ">"} {
		if i := strings.Index(p, g); i >= 0 {
			return perr(i+1, "the group name %q is reserved for %s", hostGroup, hostToken)
		}
	}
	reps, qerr := quantifiers(p)
	if qerr != nil {
		return perr(qerr.col, "invalid regexp: %s", qerr.msg)
	}
	expanded := strings.Replace(p, hostToken, hostRE, 1)
	re, err := syntax.Parse(expanded, syntax.Perl)
	if err != nil {
		col := 1
		var se *syntax.Error
		if errors.As(err, &se) {
			if i := strings.Index(p, se.Expr); i >= 0 && se.Expr != "" {
				col = i + 1
			}
			return perr(col, "invalid regexp: %s", se.Code)
		}
		return perr(col, "invalid regexp: %v", err)
	}
	if !startsAnchored(re) {
		return perr(1, "not anchored: the pattern must start with ^ and must not have a top-level alternation")
	}
	end := endsAnchored(re)
	var before, after []repetition
	for _, r := range reps {
		if r.hasHost {
			return perr(r.start+1, "%s must not be inside a repeated or optional group", hostToken)
		}
		if r.max == 1 || !r.wide {
			continue
		}
		if hostAt < 0 || r.start < hostAt {
			before = append(before, r)
		} else {
			after = append(after, r)
		}
	}
	if hostAt < 0 {
		return nil
	}
	for _, r := range before {
		if r.delimited {
			continue // (b)
		}
		if o.anchor != "" && strings.Contains(p, o.anchor+hostToken) {
			continue // (c)
		}
		if !end {
			return perr(r.start+1, "wide wildcard %q before %s in a pattern not end-anchored with $: an attacker-written field could supply the address", r.text, hostToken)
		}
		if len(after) > 0 {
			return perr(after[0].start+1, "wide wildcard %q after %s while %q before it: the address's position is not fixed by the daemon-written suffix", after[0].text, hostToken, r.text)
		}
	}
	return nil
}

// lintPrefix refuses wide wildcards in a prefix regexp: a prefix comes
// before every rule's <HOST>.
func lintPrefix(p string, off int) *PatternError {
	reps, qerr := quantifiers(p)
	if qerr != nil {
		return &PatternError{Pattern: p, Col: off + qerr.col, Msg: "invalid regexp: " + qerr.msg}
	}
	if _, err := syntax.Parse(p, syntax.Perl); err != nil {
		return &PatternError{Pattern: p, Col: off + 1, Msg: fmt.Sprintf("invalid regexp: %v", err)}
	}
	for _, r := range reps {
		if r.max != 1 && r.wide && !r.delimited {
			return &PatternError{Pattern: p, Col: off + r.start + 1, Msg: fmt.Sprintf("wide wildcard %q in the prefix, which precedes every <HOST>", r.text)}
		}
	}
	return nil
}

func startsAnchored(re *syntax.Regexp) bool {
	for {
		switch re.Op {
		case syntax.OpBeginText:
			return true
		case syntax.OpConcat:
			if len(re.Sub) == 0 {
				return false
			}
			re = re.Sub[0]
		case syntax.OpCapture:
			re = re.Sub[0]
		default:
			return false
		}
	}
}

func endsAnchored(re *syntax.Regexp) bool {
	for {
		switch re.Op {
		case syntax.OpEndText:
			return true
		case syntax.OpConcat:
			if len(re.Sub) == 0 {
				return false
			}
			re = re.Sub[len(re.Sub)-1]
		case syntax.OpCapture:
			re = re.Sub[0]
		default:
			return false
		}
	}
}

// repetition is a quantified atom found in a pattern's text.
type repetition struct {
	start     int    // byte offset of the atom
	text      string // atom and quantifier
	max       int    // -1: unbounded
	wide      bool   // the atom can match whitespace and non-whitespace
	hasHost   bool   // the atom contains <HOST>
	delimited bool   // exception (b)
}

// scanError is a syntax error found by quantifiers, with its column.
type scanError struct {
	col int
	msg string
}

// quantifiers scans a pattern for quantified atoms, keeping their
// positions so that errors can name a column. It finds unbalanced
// parentheses and brackets; regexp/syntax finds the rest.
func quantifiers(p string) ([]repetition, *scanError) {
	var out []repetition
	var groups []int // start offsets of open groups
	type span struct{ start, end int }
	last := span{-1, -1}
	i := 0
	for i < len(p) {
		c := p[i]
		switch {
		case strings.HasPrefix(p[i:], hostToken):
			last = span{i, i + len(hostToken)}
			i += len(hostToken)
			continue
		case c == '\\':
			j := escapeEnd(p, i)
			last = span{i, j}
			i = j
			continue
		case c == '[':
			j := classEnd(p, i)
			if j < 0 {
				return nil, &scanError{i + 1, "unterminated character class"}
			}
			last = span{i, j}
			i = j
			continue
		case c == '(':
			groups = append(groups, i)
			last = span{-1, -1}
			i++
			continue
		case c == ')':
			if len(groups) == 0 {
				return nil, &scanError{i + 1, "unbalanced )"}
			}
			last = span{groups[len(groups)-1], i + 1}
			groups = groups[:len(groups)-1]
			i++
			continue
		case c == '|' || c == '^' || c == '$':
			last = span{-1, -1}
			i++
			continue
		case c == '*' || c == '+' || c == '?' || c == '{':
			max, qend, ok := quantifier(p, i)
			if !ok { // a literal {
				last = span{i, i + 1}
				i++
				continue
			}
			if qend < len(p) && p[qend] == '?' {
				qend++
			}
			if last.start >= 0 {
				atom := p[last.start:last.end]
				r := repetition{start: last.start, text: p[last.start:qend], max: max, hasHost: strings.Contains(atom, hostToken)}
				if !r.hasHost {
					r.wide, r.delimited = wideAtom(atom, p, qend, groups)
				}
				out = append(out, r)
			}
			last = span{-1, -1}
			i = qend
			continue
		}
		_, size := utf8.DecodeRuneInString(p[i:])
		last = span{i, i + size}
		i += size
	}
	if len(groups) > 0 {
		return nil, &scanError{groups[len(groups)-1] + 1, "missing closing )"}
	}
	return out, nil
}

// quantifier parses the quantifier at p[i]; ok is false for a { that is a
// literal.
func quantifier(p string, i int) (max, end int, ok bool) {
	switch p[i] {
	case '*', '+':
		return -1, i + 1, true
	case '?':
		return 1, i + 1, true
	}
	j := i + 1
	for j < len(p) && isDigit(p[j]) {
		j++
	}
	if j == i+1 || j >= len(p) {
		return 0, 0, false
	}
	min := p[i+1 : j]
	if p[j] == '}' {
		n := atoiSmall(min)
		return n, j + 1, true
	}
	if p[j] != ',' {
		return 0, 0, false
	}
	j++
	k := j
	for k < len(p) && isDigit(p[k]) {
		k++
	}
	if k >= len(p) || p[k] != '}' {
		return 0, 0, false
	}
	if k == j {
		return -1, k + 1, true
	}
	return atoiSmall(p[j:k]), k + 1, true
}

func atoiSmall(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
		if n > 1<<20 {
			return 1 << 20
		}
	}
	return n
}

func escapeEnd(p string, i int) int {
	if i+1 >= len(p) {
		return len(p)
	}
	switch p[i+1] {
	case 'Q':
		if e := strings.Index(p[i+2:], `\E`); e >= 0 {
			return i + 2 + e + 2
		}
		return len(p)
	case 'x', 'p', 'P':
		if i+2 < len(p) && p[i+2] == '{' {
			if e := strings.IndexByte(p[i+2:], '}'); e >= 0 {
				return i + 2 + e + 1
			}
			return len(p)
		}
		if p[i+1] == 'x' {
			return min(i+4, len(p))
		}
		return min(i+3, len(p))
	}
	_, size := utf8.DecodeRuneInString(p[i+1:])
	return i + 1 + size
}

func classEnd(p string, i int) int {
	j := i + 1
	if j < len(p) && p[j] == '^' {
		j++
	}
	if j < len(p) && p[j] == ']' {
		j++
	}
	for j < len(p) {
		switch {
		case p[j] == '\\':
			j = escapeEnd(p, j)
		case strings.HasPrefix(p[j:], "[:"):
			if e := strings.Index(p[j+2:], ":]"); e >= 0 {
				j += 2 + e + 2
			} else {
				j++
			}
		case p[j] == ']':
			return j + 1
		default:
			j++
		}
	}
	return -1
}

// wideAtom reports whether the atom can match both whitespace and
// non-whitespace, and whether it is a negated class followed by a literal
// it excludes (exception (b)).
func wideAtom(atom, p string, next int, groups []int) (wide, delimited bool) {
	re, err := syntax.Parse(atom, syntax.Perl)
	if err != nil {
		return true, false // be strict about what we cannot read
	}
	re = re.Simplify()
	wide = canMatch(re, true) && canMatch(re, false)
	if !wide || !strings.HasPrefix(atom, "[^") || re.Op != syntax.OpCharClass {
		return wide, false
	}
	lit, ok := nextLiteral(p, next, groups)
	if !ok {
		return wide, false
	}
	return wide, !classHas(re.Rune, lit)
}

// nextLiteral returns the literal character that must follow position i:
// the next character if it is a literal, looking past the end of the
// enclosing groups (an alternative ends at | or )) when they are not
// repeated.
func nextLiteral(p string, i int, groups []int) (rune, bool) {
	depth := len(groups)
	for i < len(p) {
		switch c := p[i]; c {
		case '|', ')':
			if depth == 0 {
				return 0, false
			}
			// skip to the ) closing this group
			level := 0
			for i < len(p) {
				switch p[i] {
				case '\\':
					i = escapeEnd(p, i)
					continue
				case '[':
					if e := classEnd(p, i); e > 0 {
						i = e
						continue
					}
				case '(':
					level++
				case ')':
					if level == 0 {
						goto closed
					}
					level--
				}
				i++
			}
			return 0, false
		closed:
			i++
			depth--
			if i < len(p) {
				switch p[i] {
				case '*', '+', '{':
					return 0, false
				case '?':
					i++
				}
			}
			continue
		case '\\':
			if i+1 < len(p) && strings.ContainsRune(`.+*?()|[]{}^$\ -:"'<>/=,;@#%&!~`, rune(p[i+1])) {
				return rune(p[i+1]), true
			}
			return 0, false
		case '(', '[', '.', '^', '$', '*', '+', '?', '{':
			return 0, false
		default:
			if strings.HasPrefix(p[i:], hostToken) {
				return 0, false
			}
			r, size := utf8.DecodeRuneInString(p[i:])
			if i+size < len(p) && strings.ContainsRune("*?{", rune(p[i+size])) {
				return 0, false // the literal itself is optional
			}
			return r, true
		}
	}
	return 0, false
}

func classHas(ranges []rune, r rune) bool {
	for i := 0; i+1 < len(ranges); i += 2 {
		if r >= ranges[i] && r <= ranges[i+1] {
			return true
		}
	}
	return false
}

var spaces = []rune{'\t', '\n', '\f', '\r', ' '} // RE2's \s

// canMatch reports whether re can match a string containing a whitespace
// character (space true) or a non-whitespace character (space false).
func canMatch(re *syntax.Regexp, space bool) bool {
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			if isSpaceRune(r) == space {
				return true
			}
		}
		return false
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if space {
				for _, s := range spaces {
					if s >= lo && s <= hi {
						return true
					}
				}
			} else {
				// any non-space in [lo, hi]?
				n := 0
				for _, s := range spaces {
					if s >= lo && s <= hi {
						n++
					}
				}
				if int(hi-lo+1) > n {
					return true
				}
			}
		}
		return false
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return true
	case syntax.OpCapture, syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat, syntax.OpConcat, syntax.OpAlternate:
		for _, s := range re.Sub {
			if canMatch(s, space) {
				return true
			}
		}
	}
	return false
}

func isSpaceRune(r rune) bool {
	for _, s := range spaces {
		if r == s {
			return true
		}
	}
	return false
}
