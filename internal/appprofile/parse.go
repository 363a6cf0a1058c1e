package appprofile

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on custom profile files.
const (
	MaxFileSize = 1 << 20 // bytes in one profile file
	MaxNameLen  = 64      // bytes in a profile name
	maxKeyLen   = 64      // bytes in a key
	maxValueLen = 1024    // bytes in a value (ufw skips profiles with longer ones)
)

// ParseError is an error in a profile file. Line is 1-based; it is 0 when the
// error concerns the whole file (for example its size).
type ParseError struct {
	Path string
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Msg)
	}
	return e.Path + ": " + e.Msg
}

// parsed is a profile with the line of its [section] header.
type parsed struct {
	Profile
	line int
}

// Parse parses one file in ufw's applications.d format and returns its
// profiles in file order, each with Source set to "path:line" of its [section]
// header. path is used only in Source and in errors, which are *ParseError.
//
// The format is INI-like:
//
//	# comment (also ";")
//	[Nginx Full]
//	title=Web Server (Nginx, HTTP + HTTPS)
//	description=Small, but very powerful and efficient web server
//	ports=80,443/tcp
//
// Keys are title, description and ports (case-insensitive, "=" or ":" as
// delimiter, as Python's configparser reads them). ports is a "|"-separated
// list of groups; a group is a comma-separated list of ports and N:M ranges
// with an optional /tcp or /udp suffix, none meaning both protocols. Like ufw,
// a range needs a protocol. ports is required; an absent or empty title
// defaults to the name. A title or description may continue on following
// lines indented deeper than its key; the pieces are joined with a space.
func Parse(path string, data []byte) ([]Profile, error) {
	ps, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	var out []Profile
	for _, p := range ps {
		out = append(out, p.Profile)
	}
	return out, nil
}

type section struct {
	parsed
	keys       map[string]int // key -> line it was set on
	lastKey    string         // key a deeper-indented line continues, "" if none
	lastIndent int
}

func parse(path string, data []byte) ([]parsed, error) {
	if len(data) > MaxFileSize {
		return nil, &ParseError{Path: path, Msg: fmt.Sprintf("file larger than %d bytes (1 MiB)", MaxFileSize)}
	}
	var (
		out  []parsed
		cur  *section
		seen = map[string]int{} // lower-case name -> header line
	)
	fail := func(line int, format string, args ...any) error {
		return &ParseError{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	finish := func() error {
		if cur == nil {
			return nil
		}
		if _, ok := cur.keys["ports"]; !ok {
			return fail(cur.line, "profile %q has no ports", cur.Name)
		}
		if cur.Title == "" {
			cur.Title = cur.Name
		}
		out = append(out, cur.parsed)
		return nil
	}

	text := string(data)
	text = strings.TrimPrefix(text, "\uFEFF")
	for i, raw := range strings.Split(text, "\n") {
		n := i + 1
		line := strings.TrimSuffix(raw, "\r")
		if !utf8.ValidString(line) {
			return nil, fail(n, "invalid UTF-8")
		}
		trimmed := strings.Trim(line, " \t")
		if trimmed == "" {
			if cur != nil {
				cur.lastKey = ""
			}
			continue
		}
		if trimmed[0] == '#' || trimmed[0] == ';' {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " \t"))

		// A line indented deeper than the key before it continues that
		// key's value, as in configparser.
		if cur != nil && cur.lastKey != "" && indent > cur.lastIndent {
			var dst *string
			switch cur.lastKey {
			case "title":
				dst = &cur.Title
			case "description":
				dst = &cur.Description
			default:
				return nil, fail(n, "the ports value must be on one line")
			}
			v := trimmed
			if *dst != "" {
				v = *dst + " " + trimmed
			}
			if msg := checkText(v); msg != "" {
				return nil, fail(n, "%s", msg)
			}
			*dst = v
			continue
		}

		if trimmed[0] == '[' {
			if !strings.HasSuffix(trimmed, "]") {
				return nil, fail(n, "section header does not end with \"]\"")
			}
			if err := finish(); err != nil {
				return nil, err
			}
			name := trimmed[1 : len(trimmed)-1]
			if msg := checkName(name); msg != "" {
				return nil, fail(n, "%s", msg)
			}
			key := asciiLower(name)
			if prev, dup := seen[key]; dup {
				return nil, fail(n, "profile %q already defined at line %d", name, prev)
			}
			seen[key] = n
			cur = &section{
				parsed: parsed{Profile: Profile{Name: name, Source: fmt.Sprintf("%s:%d", path, n)}, line: n},
				keys:   map[string]int{},
			}
			continue
		}

		d := strings.IndexAny(trimmed, "=:")
		if d < 0 {
			return nil, fail(n, "expected \"[name]\", \"key=value\" or a comment")
		}
		key := asciiLower(strings.Trim(trimmed[:d], " \t"))
		val := strings.Trim(trimmed[d+1:], " \t")
		switch {
		case key == "":
			return nil, fail(n, "missing key before %q", trimmed[d])
		case len(key) > maxKeyLen:
			return nil, fail(n, "key longer than %d bytes", maxKeyLen)
		case cur == nil:
			return nil, fail(n, "key %q before the first [name] section", key)
		}
		if prev, dup := cur.keys[key]; dup {
			return nil, fail(n, "duplicate key %q (first set at line %d)", key, prev)
		}
		switch key {
		case "title", "description":
			if msg := checkText(val); msg != "" {
				return nil, fail(n, "%s", msg)
			}
			if key == "title" {
				cur.Title = val
			} else {
				cur.Description = val
			}
		case "ports":
			if len(val) > maxValueLen {
				return nil, fail(n, "value longer than %d bytes", maxValueLen)
			}
			ports, msg := parsePorts(val)
			if msg != "" {
				return nil, fail(n, "%s", msg)
			}
			cur.Ports = ports
		default:
			return nil, fail(n, "unknown key %q (want title, description or ports)", key)
		}
		cur.keys[key] = n
		cur.lastKey, cur.lastIndent = key, indent
	}
	if err := finish(); err != nil {
		return nil, err
	}
	return out, nil
}

// parsePorts parses a ports value. It returns a non-empty message on error.
func parsePorts(s string) ([]Port, string) {
	if s == "" {
		return nil, "empty ports value"
	}
	var ports []Port
	for _, group := range strings.Split(s, "|") {
		group = strings.Trim(group, " \t")
		if group == "" {
			return nil, fmt.Sprintf("empty port group in %q", s)
		}
		list, proto, hasProto := strings.Cut(group, "/")
		list = strings.Trim(list, " \t")
		if hasProto {
			proto = asciiLower(strings.Trim(proto, " \t"))
			if proto != "tcp" && proto != "udp" {
				return nil, fmt.Sprintf("invalid protocol %q in %q (want tcp or udp)", proto, group)
			}
		}
		if list == "" {
			return nil, fmt.Sprintf("no port in %q", group)
		}
		for _, item := range strings.Split(list, ",") {
			item = strings.Trim(item, " \t")
			if item == "" {
				return nil, fmt.Sprintf("empty port in %q", group)
			}
			lo, hi, isRange := strings.Cut(item, ":")
			first, msg := parsePort(strings.Trim(lo, " \t"))
			if msg != "" {
				return nil, msg
			}
			last := first
			if isRange {
				if last, msg = parsePort(strings.Trim(hi, " \t")); msg != "" {
					return nil, msg
				}
				if first > last {
					return nil, fmt.Sprintf("invalid port range %q: %d is greater than %d", item, first, last)
				}
				if !hasProto {
					return nil, fmt.Sprintf("port range %q needs a protocol (/tcp or /udp)", item)
				}
			}
			ports = append(ports, Port{Proto: proto, First: first, Last: last})
		}
	}
	return ports, ""
}

func parsePort(s string) (uint16, string) {
	if s == "" {
		return 0, "missing port number"
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Sprintf("invalid port %q", s)
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 || n > 65535 {
		return 0, fmt.Sprintf("port %s out of range 1-65535", s)
	}
	return uint16(n), ""
}

// checkName returns why name is not a valid profile name, or "". Names are
// ufw's: ASCII letters, digits, space, ".", "_", "-" and "+", starting with a
// letter or digit, at most MaxNameLen bytes. A name that is all digits would
// read as a port and is refused, as ufw does.
func checkName(name string) string {
	if name == "" {
		return "empty profile name"
	}
	if len(name) > MaxNameLen {
		return fmt.Sprintf("profile name longer than %d characters", MaxNameLen)
	}
	digits := true
	for _, r := range name {
		switch {
		case r >= '0' && r <= '9':
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == ' ', r == '.', r == '_', r == '-', r == '+':
			digits = false
		default:
			return fmt.Sprintf("profile name %q contains invalid character %q (allowed: letters, digits, space, \".\", \"_\", \"-\", \"+\")", name, r)
		}
	}
	if c := name[0]; !isAlnum(c) {
		return fmt.Sprintf("profile name %q must start with a letter or digit", name)
	}
	if name[len(name)-1] == ' ' {
		return fmt.Sprintf("profile name %q ends with a space", name)
	}
	if digits {
		return fmt.Sprintf("profile name %q is a number and would read as a port", name)
	}
	return ""
}

// checkText returns why v is not acceptable as a title or description, or "".
// Control characters are refused so that a profile cannot smuggle terminal
// escape sequences into "moat app info".
func checkText(v string) string {
	if len(v) > maxValueLen {
		return fmt.Sprintf("value longer than %d bytes", maxValueLen)
	}
	for _, r := range v {
		if r < 0x20 && r != '\t' || r >= 0x7f && r <= 0x9f {
			return fmt.Sprintf("control character %U in value", r)
		}
	}
	return ""
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// asciiLower lower-cases ASCII letters only, so that no Unicode case folding
// (for instance KELVIN SIGN to "k") can make two different names equal.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
