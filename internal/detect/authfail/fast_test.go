package authfail

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// checkFastAgree runs every fast path that applies to line against its
// rule's regexp and reports any difference.
func checkFastAgree(t testing.TB, f *Filter, line []byte) {
	t.Helper()
	if len(line) > MaxLineLen {
		return
	}
	msgStart, _, _, ok := f.prefix.split(line)
	if !ok || msgStart >= len(line) {
		return
	}
	msg := line[msgStart:]
	if bytes.ContainsAny(msg, "\t\n\f\r") {
		return
	}
	for _, r := range f.rules {
		if r.fast == nil || !hasPrefix(msg, r.lit) {
			continue
		}
		res := r.fast(msg)
		loc := r.re.FindSubmatchIndex(msg)
		switch res.status {
		case fastNo:
			if loc != nil {
				t.Errorf("%s: fast path says no, regexp matches: %q", r.label, msg)
			}
		case fastYes:
			if loc == nil {
				t.Errorf("%s: fast path says yes, regexp does not match: %q", r.label, msg)
				continue
			}
			host := [2]int{-1, -1}
			if r.host >= 0 {
				host = [2]int{loc[r.host], loc[r.host+1]}
			}
			user := [2]int{-1, -1}
			if r.user >= 0 && loc[r.user] >= 0 && loc[r.user+1] > loc[r.user] {
				user = [2]int{loc[r.user], loc[r.user+1]}
			} else if r.alt >= 0 && loc[r.alt] >= 0 && loc[r.alt+1] > loc[r.alt] {
				user = [2]int{loc[r.alt], loc[r.alt+1]}
			}
			if res.host != host || res.user != user {
				t.Errorf("%s: fast path host %v user %v, regexp host %v user %v: %q", r.label, res.host, res.user, host, user, msg)
			}
		}
	}
}

// fastSeeds are messages that probe the fast paths' edges.
var fastSeeds = []string{
	"Failed password for root from 198.51.100.7 port 22 ssh2",
	"Failed password for invalid user admin from 198.51.100.7 port 22 ssh2",
	"Failed password for invalid user from 198.51.100.7",
	"Failed password for invalid user  from 198.51.100.7 port 1",
	"Failed password for  from 198.51.100.7 port 22 ssh2",
	"Failed password for x from 198.51.100.7 port ssh2",
	"Failed password for x from 198.51.100.7 port 22 ssh2   ",
	"Failed password for x from 198.51.100.7  port 22",
	"Failed password for x from [198.51.100.7] port 22 ssh2",
	"Failed password for x from 198.51.100.7:22 port 22",
	"Failed password for x from ::ffff:198.51.100.7 port 22 ssh2",
	"Failed password for x from fe80::1%eth0 port 22 ssh2",
	"Failed password for x from 198.51.100.7 port 22 ssh2 from 192.0.2.66",
	"Failed password for x from 192.0.2.66 port 22 ssh2 from 198.51.100.7 port 2 ssh2",
	"Failed password for x from 192.030.0.6 port 22 ssh2",
	"Failed  password for x from 198.51.100.7 port 22 ssh2",
	"Failed password  for x from 198.51.100.7 port 22 ssh2",
	"Failed password for x from 198.51.100.7 ssh2",
	"Failed password for x from 198.51.100.7 port 22 ssh",
	"Failed keyboard-interactive/pam for invalid user jamedds from 2001:db8::1 port 33723 ssh2",
	"Invalid user admin from 198.51.100.7 port 22",
	"Invalid user admin from 198.51.100.7 port 22 [preauth]",
	"Invalid user  from 198.51.100.7",
	"Invalid user from from 198.51.100.7",
	"Invalid user x from 198.51.100.7 [preauth] ",
	"Invalid user x from 198.51.100.7 port 22  [preauth]",
	"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.7  user=root",
	"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.7",
	"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=rhost=192.0.2.66 rhost=198.51.100.7 [preauth]",
	"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.7 user=",
	"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=  rhost=198.51.100.7",
	"pam_unix(sshd:auth):  authentication failure;  logname=a  uid=0  euid=0  tty=ssh  ruser=b  rhost=198.51.100.7",
	"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.7 user=root rhost=192.0.2.66",
	"pam_unix(sshd:auth): check pass; user unknown",
	"pam_unix(sshd:session): session opened for user root by (uid=0)",
	"pam_ldap(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.7",
	"pam_(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.7",
	"Received disconnect from 198.51.100.7 port 22:11: Bye Bye [preauth]",
	"Received disconnect from 198.51.100.7 port 22: 11: Bye Bye [preauth]",
	"Received disconnect from 198.51.100.7: 11: Bye Bye [preauth]",
	"Received disconnect from 2001:db8::7: 11: Bye Bye [preauth]",
	"Received disconnect from 2001:db8::7 port 5:11: disconnected by user",
	"Received disconnect from 198.51.100.7 port 22:3: com.jcraft.jsch.JSchException: Auth fail [preauth]",
	"Received disconnect from 198.51.100.7 port 22:14: No supported authentication methods available [preauth]",
	"Received disconnect from 198.51.100.7 port 22:111: x",
	"Received disconnect from 198.51.100.7 port 22 11: x",
	"Received disconnect from host.example.com port 22:11: x",
	"Connection closed by 198.51.100.7 port 22 [preauth]",
	"Connection closed by 198.51.100.7 port 22",
	"Connection closed by 198.51.100.7 [preauth]",
	"Connection closed by 198.51.100.7  [preauth]",
	"Connection closed by 198.51.100.7 port 22  [preauth]  ",
	"Connection closed by authenticating user root 198.51.100.7 port 22 [preauth]",
	"Connection closed by invalid user  198.51.100.7 port 22 [preauth]",
	"Connection closed by invalid user root 192.0.2.66 port 22 198.51.100.7 port 22 [preauth]",
	"Connection closed by invalid user 198.51.100.7 port 22 [preauth]",
	"Connection closed by invalid user x 198.51.100.7 port [preauth]",
	"Connection closed by invalid user x 198.51.100.7 port 5",
	"Connection closed by invalid user x [198.51.100.7] port 5",
	"Connection closed by remote host",
	"Connection reset by 198.51.100.7 port 22",
	"Connection reset by peer",
	"Disconnected from invalid user admin 198.51.100.7 port 22 [preauth]",
	"Disconnected from authenticating user root 198.51.100.7 port 22 [preauth]",
	"Disconnected from user alice 198.51.100.7 port 22",
	"Disconnected from 198.51.100.7 port 22 [preauth]",
	"Accepted publickey for alice from 198.51.100.7 port 22 ssh2: ED25519 SHA256:x",
	"Accepted password for alice from 198.51.100.7 port 22 ssh2",
	"Accepted password for alice from 198.51.100.7",
	"Accepted password for al ice from 198.51.100.7 port 22 ssh2",
	"Accepted password for alice from host.example.com port 22 ssh2",
	"Accepted password for alice from 198.51.100.7:1 port 22 ssh2",
	"Connection from 198.51.100.7 port 22 on 192.0.2.1 port 22",
	"Connection from 198.51.100.7",
	"Connection from ::ffff:198.51.100.7 port 1",
	"Connection from 198.51.100.7.5 port 1",
}

// TestFastPathsAgree compares the fast paths with the regexps on edge
// cases, on mutations of them, and on a generated auth.log.
func TestFastPathsAgree(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = " .:[]01a-=()/\"'fromport"
	for _, mode := range BuiltinModes("sshd") {
		f := mustBuiltin(t, "sshd", mode)
		for _, s := range fastSeeds {
			line := "Mar 10 12:00:00 host sshd[1]: " + s
			checkFastAgree(t, f, []byte(line))
			for range 300 {
				b := []byte(s)
				for range 1 + rng.IntN(3) {
					i := rng.IntN(len(b) + 1)
					switch rng.IntN(3) {
					case 0: // insert
						b = append(b[:i], append([]byte{alphabet[rng.IntN(len(alphabet))]}, b[i:]...)...)
					case 1: // delete
						if i < len(b) {
							b = append(b[:i], b[i+1:]...)
						}
					default: // replace
						if i < len(b) {
							b[i] = alphabet[rng.IntN(len(alphabet))]
						}
					}
				}
				checkFastAgree(t, f, append([]byte("Mar 10 12:00:00 host sshd[1]: "), b...))
			}
		}
	}
	lines, _ := genLog(t, 20000, 7)
	f := mustBuiltin(t, "sshd", "aggressive")
	for _, l := range lines {
		checkFastAgree(t, f, []byte(l))
	}
}

// The fast paths must actually run on the common lines of a real log.
func TestFastPathsUsed(t *testing.T) {
	lines, _ := genLog(t, 20000, 8)
	f := mustBuiltin(t, "sshd", "normal")
	fast, regex := 0, 0
	for _, l := range lines {
		msgStart, _, _, ok := f.prefix.split([]byte(l))
		if !ok {
			continue
		}
		msg := []byte(l)[msgStart:]
		for _, i := range f.byFirst[msg[0]] {
			r := f.rules[i]
			if !hasPrefix(msg, r.lit) {
				continue
			}
			if r.fast != nil && r.fast(msg).status != fastUnknown {
				fast++
			} else {
				regex++
			}
		}
	}
	t.Logf("rule evaluations: %d by fast paths, %d by regexps", fast, regex)
	if regex*20 > fast {
		t.Errorf("too many regexp evaluations: %d of %d", regex, fast+regex)
	}
}
