package authfail

import (
	"net/netip"
	"strings"
	"testing"
)

// injectionTemplates put an attacker-chosen field (%s) into lines whose
// daemon-written client is 198.51.100.7.
var injectionTemplates = []string{
	"Mar 10 12:00:00 host sshd[9]: Invalid user %s from 198.51.100.7 port 50022",
	"Mar 10 12:00:00 host sshd[9]: Failed password for invalid user %s from 198.51.100.7 port 50022 ssh2",
	"Mar 10 12:00:00 host sshd[9]: Failed password for %s from 198.51.100.7 port 50022 ssh2",
	"Mar 10 12:00:00 host sshd[9]: Failed publickey for invalid user %s from 198.51.100.7 port 50022 ssh2: RSA SHA256:abc",
	"Mar 10 12:00:00 host sshd[9]: error: maximum authentication attempts exceeded for invalid user %s from 198.51.100.7 port 50022 ssh2 [preauth]",
	"Mar 10 12:00:00 host sshd[9]: Connection closed by invalid user %s 198.51.100.7 port 50022 [preauth]",
	"Mar 10 12:00:00 host sshd[9]: Disconnected from invalid user %s 198.51.100.7 port 50022 [preauth]",
	"Mar 10 12:00:00 host sshd[9]: Bad protocol version identification '%s' from 198.51.100.7 port 50022",
	"Mar 10 12:00:00 host sshd[9]: User %s from 198.51.100.7 not allowed because not listed in AllowUsers",
	"Mar 10 12:00:00 host sshd[9]: error: PAM: Authentication failure for %s from 198.51.100.7",
	"Mar 10 12:00:00 host sshd[9]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=%s rhost=198.51.100.7",
}

var fuzzSeeds = []string{
	"Failed password for root from 192.0.2.66 port 22 ssh2",
	"from 192.0.2.66",
	"Invalid user root from 192.0.2.66",
	"x from 192.0.2.66 port 22 ssh2: RSA SHA256:x",
	"root 192.0.2.66 port 22",
	"x' from 192.0.2.66 port 22",
	"a from 192.0.2.66 not allowed because not listed in AllowUsers",
	"x rhost=192.0.2.66",
	"x from 2001:db8::66 port 1 [preauth]",
}

// FuzzSSHDMatch: the sshd filter never panics, its fast paths agree with
// its regexps, an address it extracts is a whole token of the line that
// parses to that address, and whatever an attacker puts in a user name or
// ident string, the address is the daemon's (198.51.100.7) or none.
func FuzzSSHDMatch(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	for _, s := range fastSeeds {
		f.Add("Mar 10 12:00:00 host sshd[1]: " + s)
	}
	modes := BuiltinModes("sshd")
	filters := make([]*Filter, len(modes))
	for i, m := range modes {
		filters[i] = mustBuiltin(f, "sshd", m)
	}
	real := netip.MustParseAddr("198.51.100.7")
	f.Fuzz(func(t *testing.T, s string) {
		for _, flt := range filters {
			line := []byte(s)
			checkFastAgree(t, flt, line)
			if m, _, _, ok := flt.find(line); ok && m.hostStart >= 0 && !m.badAddr {
				msg := line[m.msgStart:]
				host := msg[m.hostStart:m.hostEnd]
				if a, ok := parseAddr(host); !ok || a != m.addr || !m.addr.IsValid() {
					t.Fatalf("%s: address %v from %q", flt.Mode(), m.addr, host)
				}
				before := byte(' ')
				if m.hostStart > 0 {
					before = msg[m.hostStart-1]
				}
				after := byte(' ')
				if m.hostEnd < len(msg) {
					after = msg[m.hostEnd]
				}
				if !strings.ContainsRune(" \t=([", rune(before)) || !strings.ContainsRune(" \t\n\f\r,)]:-'\"", rune(after)) {
					t.Fatalf("%s: address %q is not a whole token: %q", flt.Mode(), host, msg)
				}
			}
			flt.MatchBytes(line)
			flt.NewSession(4).MatchBytes(line)
			// the field goes into daemon-written lines: a log line has no
			// newline and sshd cuts nothing we rely on
			field := strings.ReplaceAll(s, "\n", " ")
			for _, tmpl := range injectionTemplates {
				l := strings.Replace(tmpl, "%s", field, 1)
				if a, ok := flt.Match(l); ok && a != real {
					t.Fatalf("%s: %q: got %s, want %s or nothing", flt.Mode(), l, a, real)
				}
			}
		}
	})
}

// FuzzCompile: Compile never panics, and what it accepts has one <HOST>,
// is anchored, and matches without panicking.
func FuzzCompile(f *testing.F) {
	for _, p := range []string{
		`^Failed \S+ for .* from <HOST> port \d+ ssh2$`,
		`^user .* from <HOST>`,
		`^[^"]*" <HOST>`,
		`^(?: \S+)* <HOST>$`,
		`^<HOST>(`,
		`^\[client <HOST>(?::\d+)?\] .*`,
		`^a{2,}<HOST>`,
		`^(?P<user>\S+) <HOST> \Q.*\E$`,
		`<HOST>`,
	} {
		f.Add(p, "")
		f.Add(p, `<SYSLOG:sshd>`)
	}
	f.Fuzz(func(t *testing.T, pattern, prefix string) {
		flt, err := Compile("fuzz", []string{pattern}, nil, prefix)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "compile filter") {
				t.Fatalf("unwrapped error: %v", err)
			}
			return
		}
		if strings.Count(pattern, hostToken) != 1 {
			t.Fatalf("accepted %q with %d <HOST>", pattern, strings.Count(pattern, hostToken))
		}
		for _, l := range []string{
			"Mar 10 12:00:00 host sshd[1]: Failed password for root from 198.51.100.7 port 22 ssh2",
			"198.51.100.7 - - [05/Mar/2007:14:39:21 +0100] \"GET / HTTP/1.0\" 200 1",
			"",
			pattern,
		} {
			if a, ok := flt.Match(l); ok && !a.IsValid() {
				t.Fatalf("invalid address from %q", l)
			}
		}
	})
}
