package authfail

import "bytes"

// Fast paths. Go's regexp costs about a microsecond per line even for
// short anchored patterns, which is too slow for the hottest sshd
// messages. A rule may carry a fastFunc that recognises its common shapes
// by hand. A fast path is an optimisation, never a second definition: it
// answers fastYes only when the rule's regexp would match with the same
// <HOST> and user spans, fastNo only when the regexp certainly would not
// match, and fastUnknown whenever in doubt, which hands the message to the
// regexp. TestFastPathsAgree and FuzzSSHDMatch check the two against each
// other. Fast paths only see messages without \t \n \f \r.

type fastStatus uint8

const (
	fastUnknown fastStatus = iota
	fastNo
	fastYes
)

type fastResult struct {
	status     fastStatus
	host, user [2]int // spans in the message; {-1, -1} when absent
}

type fastFunc func(msg []byte) fastResult

var (
	unknown = fastResult{status: fastUnknown}
	no      = fastResult{status: fastNo}
)

func yes(hs, he, us, ue int) fastResult {
	if us >= ue {
		us, ue = -1, -1
	}
	return fastResult{status: fastYes, host: [2]int{hs, he}, user: [2]int{us, ue}}
}

// isHostStart reports whether c can start what <HOST> matches.
func isHostStart(c byte) bool {
	return isHexDigit(c) || c == ':' || c == '['
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// hostAt returns the end of a plain address token (hex digits, ':' and '.'
// only, no brackets or zone) starting at i and ending at a space or the end
// of b, if it parses as an address.
func hostAt(b []byte, i int) (end int, ok bool) {
	j := i
	for j < len(b) && b[j] != ' ' {
		c := b[j]
		if !isHexDigit(c) && c != ':' && c != '.' {
			return 0, false
		}
		j++
	}
	if j == i {
		return 0, false
	}
	if _, ok := parseAddr(b[i:j]); !ok {
		return 0, false
	}
	return j, true
}

// skipPort skips " port \d+" at i if present.
func skipPort(b []byte, i int) int {
	if !hasPrefix(b[i:], " port ") {
		return i
	}
	j := i + len(" port ")
	d := j
	for j < len(b) && isDigit(b[j]) {
		j++
	}
	if j == d {
		return i
	}
	return j
}

// spacesToEnd reports whether b[i:] is only spaces.
func spacesToEnd(b []byte, i int) bool {
	for ; i < len(b); i++ {
		if b[i] != ' ' {
			return false
		}
	}
	return true
}

// trimSpacesRight returns the end of b without trailing spaces.
func trimSpacesRight(b []byte) int {
	e := len(b)
	for e > 0 && b[e-1] == ' ' {
		e--
	}
	return e
}

// fastFromSuffix handles "<lit><free user> from <HOST><suffix>$" rules in
// which the address is taken after the last " from " (the regexp's greedy
// user field picks the same one when the suffix after it fits). kw is an
// optional keyword the regexp takes greedily before the user ("invalid
// user "). suffix reports whether b[i:] is the rule's whole suffix.
func fastFromSuffix(msg []byte, start int, kw string, suffix func(b []byte, i int) bool) fastResult {
	rest := msg[start:]
	p := bytes.LastIndex(rest, []byte(" from "))
	if p < 0 {
		return no // the regexp needs " from "
	}
	hs := start + p + len(" from ")
	he, ok := hostAt(msg, hs)
	if !ok || !suffix(msg, he) {
		return unknown
	}
	us := start
	if kw != "" && hasPrefix(rest, kw) && p >= len(kw) {
		us += len(kw)
	}
	return yes(hs, he, us, start+p)
}

// sshdFailedSuffix is `(?: port \d+)?(?: ssh\d*)?\s*$`.
func sshdFailedSuffix(b []byte, i int) bool {
	i = skipPort(b, i)
	if hasPrefix(b[i:], " ssh") {
		i += len(" ssh")
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return spacesToEnd(b, i)
}

// preauthSuffix is `(?: port \d+)?(?: \[preauth\])?\s*$`.
func preauthSuffix(b []byte, i int) bool {
	i = skipPort(b, i)
	if hasPrefix(b[i:], " [preauth]") {
		i += len(" [preauth]")
	}
	return spacesToEnd(b, i)
}

// fastSSHDFailed: ^Failed \S+ for (?:invalid user )?(?P<user>.*) from <HOST>(?: port \d+)?(?: ssh\d*)?\s*$
func fastSSHDFailed(msg []byte) fastResult {
	i := len("Failed ")
	sp := bytes.IndexByte(msg[i:], ' ')
	if sp <= 0 || !hasPrefix(msg[i+sp:], " for ") {
		return no
	}
	return fastFromSuffix(msg, i+sp+len(" for "), "invalid user ", sshdFailedSuffix)
}

// fastSSHDInvalidUser: ^Invalid user (?P<user>.*) from <HOST>(?: port \d+)?(?: \[preauth\])?\s*$
func fastSSHDInvalidUser(msg []byte) fastResult {
	return fastFromSuffix(msg, len("Invalid user "), "", preauthSuffix)
}

// skipKV skips `\s+key=\S*` at i.
func skipKV(b []byte, i int, key string) (int, bool) {
	j := i
	for j < len(b) && b[j] == ' ' {
		j++
	}
	if j == i || !hasPrefix(b[j:], key) {
		return 0, false
	}
	j += len(key)
	for j < len(b) && b[j] != ' ' {
		j++
	}
	return j, true
}

// fastSSHDPam: ^pam_[a-z]+\(sshd:auth\):\s+authentication failure;\s+logname=\S*\s+uid=\S*\s+euid=\S*\s+tty=\S*\s+ruser=(?P<alt>.*)\s+rhost=<HOST>(?:\s+user=(?P<user>\S*))?(?: \[preauth\])?\s*$
func fastSSHDPam(msg []byte) fastResult {
	i := len("pam_")
	j := i
	for j < len(msg) && msg[j] >= 'a' && msg[j] <= 'z' {
		j++
	}
	if j == i || !hasPrefix(msg[j:], "(sshd:auth):") {
		return no
	}
	j += len("(sshd:auth):")
	k := j
	for k < len(msg) && msg[k] == ' ' {
		k++
	}
	if k == j || !hasPrefix(msg[k:], "authentication failure;") {
		return no
	}
	k += len("authentication failure;")
	var ok bool
	for _, key := range []string{"logname=", "uid=", "euid=", "tty="} {
		if k, ok = skipKV(msg, k, key); !ok {
			return unknown
		}
	}
	s := k
	for s < len(msg) && msg[s] == ' ' {
		s++
	}
	if s == k || !hasPrefix(msg[s:], "ruser=") {
		return unknown
	}
	as := s + len("ruser=")
	p := bytes.LastIndex(msg[as:], []byte(" rhost="))
	if p < 0 {
		return unknown
	}
	ae := as + p
	hs := ae + len(" rhost=")
	he, ok := hostAt(msg, hs)
	if !ok {
		return unknown
	}
	e := he
	us, ue := -1, -1
	if u, ok := skipKV(msg, e, "user="); ok {
		v := e
		for v < len(msg) && msg[v] == ' ' {
			v++
		}
		us, ue = v+len("user="), u
		e = u
	}
	if hasPrefix(msg[e:], " [preauth]") {
		e += len(" [preauth]")
	}
	if !spacesToEnd(msg, e) {
		return unknown
	}
	if us >= ue {
		us, ue = as, ae
	}
	return yes(hs, he, us, ue)
}

// fastSSHDDisconnect: ^Received disconnect from <HOST>(?: port \d+)?:\s*<code>:…
// It answers for code 11 (a helper) and says no for other codes; the
// rules for codes 3 and 14 pass want="" to get unknown on their code.
func fastSSHDDisconnect(want string) fastFunc {
	return func(msg []byte) fastResult {
		hs := len("Received disconnect from ")
		he, ok := hostAt(msg, hs)
		if !ok {
			if hs < len(msg) && !isHostStart(msg[hs]) {
				return no
			}
			return unknown
		}
		i := skipPort(msg, he)
		if i == he || i >= len(msg) || msg[i] != ':' {
			return unknown // "HOST:" without a port: let the regexp split it
		}
		i++
		for i < len(msg) && msg[i] == ' ' {
			i++
		}
		c := i
		for i < len(msg) && isDigit(msg[i]) {
			i++
		}
		if i == c || i >= len(msg) || msg[i] != ':' {
			return no
		}
		switch code := string(msg[c:i]); {
		case code == want:
			return yes(hs, he, -1, -1)
		case code == "3" || code == "14":
			return unknown
		}
		return no
	}
}

// fastSSHDClosed handles the "Connection closed by", "Connection reset by"
// and "Disconnected from" rules:
//
//	^<lit>(?:(?:invalid|authenticating) user (?P<user>.*) )?<HOST>(?: port \d+)?(?: \[preauth\])?\s*$   (preauth false)
//	^<lit>(?:(?:invalid|authenticating) user (?P<user>.*) )?<HOST>(?: port \d+)?\s+\[preauth\]\s*$      (preauth true)
func fastSSHDClosed(lit string, preauth bool) fastFunc {
	return func(msg []byte) fastResult {
		start := len(lit)
		rest := msg[start:]
		kw := ""
		switch {
		case hasPrefix(rest, "invalid user "):
			kw = "invalid user "
		case hasPrefix(rest, "authenticating user "):
			kw = "authenticating user "
		}
		if kw == "" {
			if len(rest) == 0 || !isHostStart(rest[0]) {
				return no
			}
			he, ok := hostAt(msg, start)
			if !ok {
				return unknown
			}
			if closedSuffix(msg, he, preauth) {
				return yes(start, he, -1, -1)
			}
			return no
		}
		// user mode: the address is the last token before the suffix
		e := trimSpacesRight(msg)
		if e >= len(" [preauth]") && string(msg[e-len(" [preauth]"):e]) == " [preauth]" {
			e -= len(" [preauth]")
			for preauth && e > 0 && msg[e-1] == ' ' {
				e-- // \s+ before [preauth]
			}
		} else if preauth {
			return unknown
		}
		// optional " port \d+"
		d := e
		for d > 0 && isDigit(msg[d-1]) {
			d--
		}
		if d < e && d >= len(" port ") && string(msg[d-len(" port "):d]) == " port " {
			e = d - len(" port ")
		}
		hs := bytes.LastIndexByte(msg[:e], ' ') + 1
		us := start + len(kw)
		if hs-1 < us {
			return unknown
		}
		he, ok := hostAt(msg, hs)
		if !ok || he != e || !closedSuffix(msg, he, preauth) {
			return unknown
		}
		return yes(hs, he, us, hs-1)
	}
}

func closedSuffix(b []byte, i int, preauth bool) bool {
	i = skipPort(b, i)
	if preauth {
		j := i
		for j < len(b) && b[j] == ' ' {
			j++
		}
		if j == i || !hasPrefix(b[j:], "[preauth]") {
			return false
		}
		return spacesToEnd(b, j+len("[preauth]"))
	}
	return preauthSuffixAfterPort(b, i)
}

func preauthSuffixAfterPort(b []byte, i int) bool {
	if hasPrefix(b[i:], " [preauth]") {
		i += len(" [preauth]")
	}
	return spacesToEnd(b, i)
}

// fastSSHDAccepted: ^Accepted \S+ for (?P<user>\S+) from <HOST>(?:\s|$)
func fastSSHDAccepted(msg []byte) fastResult {
	i := len("Accepted ")
	sp := bytes.IndexByte(msg[i:], ' ')
	if sp <= 0 || !hasPrefix(msg[i+sp:], " for ") {
		return no
	}
	us := i + sp + len(" for ")
	sp = bytes.IndexByte(msg[us:], ' ')
	if sp <= 0 || !hasPrefix(msg[us+sp:], " from ") {
		return no
	}
	ue := us + sp
	hs := ue + len(" from ")
	if hs >= len(msg) || !isHostStart(msg[hs]) {
		return no
	}
	he, ok := hostAt(msg, hs)
	if !ok {
		return unknown
	}
	return yes(hs, he, us, ue)
}

// fastSSHDConnectionFrom: ^Connection from <HOST>(?: |$)
func fastSSHDConnectionFrom(msg []byte) fastResult {
	hs := len("Connection from ")
	if hs >= len(msg) || !isHostStart(msg[hs]) {
		return no
	}
	he, ok := hostAt(msg, hs)
	if !ok {
		return unknown
	}
	return yes(hs, he, -1, -1)
}
