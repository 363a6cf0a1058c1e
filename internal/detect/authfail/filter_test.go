package authfail

import (
	"net/netip"
	"strings"
	"testing"
)

const (
	victim   = "192.0.2.66"   // SECURITY.md §5: the address an attacker wants banned
	attacker = "198.51.100.7" // the real client
)

type lineCase struct {
	name string
	line string
	want string // the address, or "" for no failure
}

func checkLines(t *testing.T, f *Filter, cases []lineCase) {
	t.Helper()
	for _, tc := range cases {
		got, ok := f.Match(tc.line)
		switch {
		case tc.want == "" && ok:
			t.Errorf("%s/%s: %s: got %s, want no failure: %q", f.Name(), f.Mode(), tc.name, got, tc.line)
		case tc.want != "" && (!ok || got != netip.MustParseAddr(tc.want)):
			t.Errorf("%s/%s: %s: got %v %v, want %s: %q", f.Name(), f.Mode(), tc.name, got, ok, tc.want, tc.line)
		}
		if got, ok := f.MatchBytes([]byte(tc.line)); ok != (tc.want != "") || ok && got.String() != netip.MustParseAddr(tc.want).String() {
			t.Errorf("%s: MatchBytes disagrees with Match: %v %v", tc.name, got, ok)
		}
	}
}

func mustBuiltin(t testing.TB, name, mode string) *Filter {
	t.Helper()
	f, err := Builtin(name, mode)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// SECURITY.md A1, A2, A5, A9, A14 against the sshd filter.
func TestSSHDInjection(t *testing.T) {
	const pre = "Mar 10 12:00:00 host sshd[4242]: "
	cases := []lineCase{
		// A1: user names carrying the victim's address
		{"A1 failed-password user", pre + "Invalid user Failed password for root from " + victim + " port 22 ssh2 from " + attacker + " port 50022", attacker},
		{"A1 failed-password user 2", pre + "Failed password for invalid user Failed password for root from " + victim + " port 22 ssh2 from " + attacker + " port 50022 ssh2", attacker},
		{"A1 from user", pre + "Invalid user from " + victim + " from " + attacker + " port 50022", attacker},
		{"A1 from user 2", pre + "Failed password for invalid user from " + victim + " from " + attacker + " port 50022 ssh2", attacker},
		{"A1 invalid-user user", pre + "Invalid user Invalid user root from " + victim + " from " + attacker + " port 50022", attacker},
		{"A1 invalid-user user, no port", pre + "Invalid user Invalid user root from " + victim + " from " + attacker, attacker},
		{"A1 user ending like a real line", pre + "Failed password for invalid user x from " + victim + " port 22 ssh2 from " + attacker + " port 50022 ssh2", attacker},
		{"A1 max attempts", pre + "error: maximum authentication attempts exceeded for invalid user a from " + victim + " port 22 ssh2 from " + attacker + " port 1 ssh2 [preauth]", attacker},
		{"A1 PAM", pre + "error: PAM: Authentication failure for x from " + victim + " from " + attacker, attacker},
		{"A1 not allowed", pre + "User x from " + victim + " not allowed because listed in DenyUsers from " + attacker + " not allowed because listed in DenyUsers", attacker},
		// the injected copy is complete, but the line goes on: no failure
		// can be pinned on the victim
		{"A1 trailing junk", pre + "Failed password for root from " + victim + " port 22 ssh2 and more", ""},
		// A2: ident strings (ddos mode counts them, see below)
		{"A2 ident", pre + "Bad protocol version identification 'SSH-2.0-x' from " + victim + " '' from " + attacker + " port 4", ""},
		// A5 / R5: host names are never resolved, and an address-looking
		// reverse name is not an address
		{"A5 host name", pre + "User root from host.example.com not allowed because not listed in AllowUsers", ""},
		{"A5 address-looking name", pre + "User root from 192-0-2-66.evil not allowed because not listed in AllowUsers", ""},
		{"A5 tcpd", pre + "refused connect from 192.0.2.66.evil.example (" + attacker + ")", attacker},
		// A14 / R5
		{"A14 leading zeros", pre + "Failed password for root from 192.030.0.6 port 22 ssh2", ""},
		{"A14 mapped", pre + "Failed password for root from ::ffff:" + attacker + " port 22 ssh2", attacker},
		{"A14 zone", pre + "Failed password for root from fe80::1%eth0 port 22 ssh2", "fe80::1"},
		{"A14 long zone", pre + "Failed password for root from 2001:db8::1%abcdefgh1234567 port 22 ssh2", "2001:db8::1"},
		// the victim's address in the syslog header is not the client
		{"header", "Mar 10 12:00:00 " + victim + " sshd[4242]: Failed password for root from " + attacker + " port 22 ssh2", attacker},
		// another daemon writing sshd's words
		{"not sshd", "Mar 10 12:00:00 host notsshd[1]: Failed password for root from " + victim + " port 22 ssh2", ""},
		{"no tag", "Mar 10 12:00:00 host Failed password for root from " + victim + " port 22 ssh2", ""},
		// A8: a literal backslash-n is not a line break; control bytes go
		// to the regexp path and still match only the daemon's address
		{"A8 backslash n", pre + `Invalid user a\nMar 10 12:00:00 host sshd[1]: Failed password for root from ` + victim + " port 22 ssh2 from " + attacker + " port 9", attacker},
		{"A8 escape", pre + "Invalid user \x1b[2J\u202e from " + victim + " from " + attacker + " port 9", attacker},
		{"A8 tab", pre + "Invalid user a\tb from " + victim + " from " + attacker + " port 9", attacker},
		{"A8 invalid UTF-8", pre + "Invalid user \xff\xfe from " + victim + " from " + attacker + " port 9", attacker},
	}
	checkLines(t, mustBuiltin(t, "sshd", "normal"), cases)
	var aggressive []lineCase
	for _, c := range cases {
		if !strings.HasPrefix(c.name, "A2") { // ddos rules count idents
			aggressive = append(aggressive, c)
		}
	}
	checkLines(t, mustBuiltin(t, "sshd", "aggressive"), aggressive)

	ddos := []lineCase{
		{"A2 ident", pre + "Bad protocol version identification 'SSH-2.0-x' from " + victim + " '' from " + attacker + " port 4", attacker},
		{"A2 ident with port", pre + "Bad protocol version identification 'x from " + victim + " port 22' from " + attacker + " port 4", attacker},
		{"A2 ident, nothing after", pre + "Bad protocol version identification 'x' from " + victim + " port 22 junk", ""},
		{"closed, user injection", pre + "Connection closed by invalid user root " + victim + " port 22 " + attacker + " port 5 [preauth]", attacker},
		{"disconnected, user injection", pre + "Disconnected from authenticating user x " + victim + " port 1 [preauth] " + attacker + " port 2 [preauth]", attacker},
	}
	checkLines(t, mustBuiltin(t, "sshd", "ddos"), ddos)
}

// A9: the rhost injected into ruser; the daemon's rhost is the last one.
func TestPAMRhostInjection(t *testing.T) {
	s := mustBuiltin(t, "sshd", "normal").NewSession(0)
	const pre = "Mar 10 12:00:00 host sshd[77]: "
	for _, l := range []string{
		pre + "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=test rhost=192.0.2.151 rhost=192.0.2.1",
		pre + "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=other rhost=192.0.2.151 rhost=192.0.2.1",
	} {
		if a, ok := s.Match(l); ok && a.String() != "192.0.2.1" {
			t.Fatalf("got %s from %q", a, l)
		}
	}
	// two user names on one connection: a failure by the last rhost
	f := mustBuiltin(t, "dovecot", "normal")
	a, ok := f.Match("Apr 19 05:22:20 vm5 auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=test rhost=192.0.2.151 rhost=192.0.2.1")
	if !ok || a.String() != "192.0.2.1" {
		t.Errorf("dovecot: got %v %v, want 192.0.2.1", a, ok)
	}
}

// A3, A4: web and mail logs.
func TestWebMailInjection(t *testing.T) {
	checkLines(t, mustBuiltin(t, "apache-auth", "normal"), []lineCase{
		// CVE-2013-2178
		{"A3 URL", "[Sat Jun 01 02:17:42 2013] [error] [client " + attacker + "] File does not exist: /srv/http/site/[client " + victim + "] user root not found", ""},
		{"A3 user", "[Sat Jun 01 02:17:42 2013] [error] [client " + attacker + "] user [client " + victim + "] not found: /", attacker},
	})
	checkLines(t, mustBuiltin(t, "nginx-http-auth", "normal"), []lineCase{
		{"A3 user", `2014/04/03 22:20:40 [error] 30708#0: *3 user "x": password mismatch, client: ` + victim + `, server: s, request: "GET / HTTP/1.1", host: "h"": was not found in "/etc/nginx/.htpasswd", client: ` + attacker + `, server: , request: "GET / HTTP/1.1", host: "localhost"`, attacker},
		{"A3 referrer", `2014/04/03 22:20:40 [error] 30708#0: *3 user "x": password mismatch, client: ` + attacker + `, server: s, request: "GET / HTTP/1.1", host: "h", referrer: "x, client: ` + victim + `, server: s"`, ""},
		{"A3 request", `2014/04/03 22:20:40 [error] 30708#0: *3 user "x" was not found in "/p", client: ` + attacker + `, server: s, request: "GET /a", client: ` + victim + `, server: x HTTP/1.1", host: "h"`, ""},
	})
	checkLines(t, mustBuiltin(t, "apache-badbots", "normal"), []lineCase{
		{"A3 agent", victim + ` - - [05/Mar/2007:14:39:21 +0100] "GET / HTTP/1.0" 200 1 "-" "Mozilla/5.0 from ` + attacker + `"`, ""},
		{"bad bot", attacker + ` - - [05/Mar/2007:14:39:21 +0100] "GET / HTTP/1.0" 200 1 "-" "EmailCollector"`, attacker},
		{"A3 vhost that looks like an address", victim + ` ` + attacker + ` - - [05/Mar/2007:14:39:21 +0100] "GET / HTTP/1.0" 200 1 "-" "EmailCollector"`, ""},
	})
	checkLines(t, mustBuiltin(t, "postfix", "normal"), []lineCase{
		// CVE-2013-7176: the HELO and addresses come after the client
		{"A4 rcpt", "Jul 18 23:12:56 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[" + attacker + "]: 554 5.7.1 <x[" + victim + "]: 554@x>: Relay access denied; from=<a[" + victim + "]> to=<b> proto=ESMTP helo=<[" + victim + "]>", attacker},
		{"A4 name", "Jul 18 23:12:56 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[" + victim + "]y[" + attacker + "]: 554 5.7.1 <x>: Relay access denied", ""},
	})
	checkLines(t, mustBuiltin(t, "postfix", "auth"), []lineCase{
		{"A4 sasl", "Mar 10 13:33:30 mx postfix/smtpd[3937]: warning: unknown[" + attacker + "]: SASL LOGIN authentication failed: x [" + victim + "]: SASL", attacker},
	})
	checkLines(t, mustBuiltin(t, "dovecot", "normal"), []lineCase{
		// dovecot logs user=<…> unescaped: the address is after the last rip=
		{"A4 user", "Jun 13 16:30:54 mx dovecot: imap-login: Disconnected (auth failed, 2 attempts): user=<x>, method=PLAIN, rip=" + victim + ", lip=1.1.1.1>, method=PLAIN, rip=" + attacker + ", lip=113.212.99.194, TLS", attacker},
		{"A4 user, second copy after", "Jun 13 16:30:54 mx dovecot: imap-login: Disconnected (auth failed, 2 attempts): user=<x>, method=PLAIN, rip=" + attacker + ", lip=1.1.1.1, rip=" + victim, ""},
		{"A4 imap login", "Jun 13 16:30:54 mx dovecot: auth: passwd-file(u [" + victim + "] plaintext," + attacker + "): unknown user", ""},
	})
	checkLines(t, mustBuiltin(t, "mysqld-auth", "normal"), []lineCase{
		{"user", "2015-10-07 06:09:42 5907 [Warning] Access denied for user 'x'@'" + victim + "' (using password: YES)'@'" + attacker + "' (using password: YES)", attacker},
		{"host name", "2015-10-07 06:09:42 5907 [Warning] Access denied for user 'root'@'localhost' (using password: YES)", ""},
	})
	checkLines(t, mustBuiltin(t, "proftpd", "normal"), []lineCase{
		{"user", "Jun 14 00:09:59 ftp proftpd[17839] ftp.example.com (x[" + attacker + "]): USER ftp proftpd[1] ftp (y[" + victim + "]): no such user found from x [" + attacker + "] to 1.1.1.1:21", attacker},
	})
}

func TestCompileAPI(t *testing.T) {
	f, err := Compile("myapp",
		[]string{`^login failed for (?P<user>.*) from <HOST> port \d+$`, `^blocked <HOST>`},
		[]string{`^blocked 10\.`},
		`<SYSLOG:myapp|myapp-worker>`)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.Names(), ","); got != "myapp/1,myapp/2" {
		t.Errorf("Names() = %s", got)
	}
	checkLines(t, f, []lineCase{
		{"plain", "Mar 10 12:00:00 host myapp[1]: login failed for bob from " + attacker + " port 80", attacker},
		{"worker", "Mar 10 12:00:00 host myapp-worker: login failed for bob from " + attacker + " port 80", attacker},
		{"ignored", "Mar 10 12:00:00 host myapp[1]: blocked 10.1.2.3", ""},
		{"second rule", "Mar 10 12:00:00 host myapp[1]: blocked " + attacker, attacker},
		{"other daemon", "Mar 10 12:00:00 host other[1]: blocked " + attacker, ""},
		{"DNS name", "Mar 10 12:00:00 host myapp[1]: login failed for bob from www.example.com port 80", ""},
		{"too long", "Mar 10 12:00:00 host myapp[1]: login failed for " + strings.Repeat("A ", MaxLineLen) + " from " + attacker + " port 80", ""},
	})
	// a regexp prefix, and no prefix
	g, err := Compile("web", []string{`^<HOST> - `}, nil, `\[\w+\] `)
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, g, []lineCase{{"regexp prefix", "[web] " + attacker + " - x", attacker}, {"no prefix", attacker + " - x", ""}})
	h, err := Compile("bare", []string{`^<HOST> - `}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	checkLines(t, h, []lineCase{{"bare", attacker + " - x", attacker}, {"bracketed v6", "[2001:db8::7] - x", "2001:db8::7"}})
	if _, err := Compile("none", nil, nil, ""); err == nil {
		t.Error("a filter without failregex compiled")
	}
	if _, err := Compile("bad", []string{`^<HOST>`}, []string{`(`}, ""); err == nil {
		t.Error("a bad ignoreregex compiled")
	}
}

// The syslog header parser: forms of timestamp, host and tag.
func TestSyslogHeader(t *testing.T) {
	f := mustBuiltin(t, "sshd", "normal")
	const msg = "Failed password for root from " + attacker + " port 22 ssh2"
	for _, pre := range []string{
		"Jan  2 15:04:05 host sshd[1]: ",
		"Jan 2 15:04:05 host sshd[1]: ",
		"Jan 02 15:04:05 host sshd[1]: ",
		"Jan  2 15:04:05.123456 host sshd[1]: ",
		"Jan  2 15:04:05 sshd[1]: ",
		"Jan  2 15:04:05 host sshd: ",
		"Jan  2 15:04:05 host sshd-session[1]: ",
		"Jan  2 15:04:05 [sshd]: ",
		"Jan  2 15:04:05 host sshd[1]: [ID 800047 auth.info] ",
		"Jan  2 15:04:05 host sshd[1] ", // no colon, as proftpd writes
		"2015-04-16T18:02:50.321974+00:00 host sshd[2716]: ",
		"2015-04-16 18:02:50 host sshd[2716]: ",
		"<38>Jan  2 15:04:05 host sshd[1]: ",
		"<38>1 2019-07-08T17:40:16.954167-04:00 host.example.com sshd 57915 - - ",
		"<38>1 2019-07-08T17:40:16Z host sshd 1 ID47 [a@1 x=\"]\\\"\"][b@2] ",
		"host sshd[1]: ",
		"sshd[1]: ",
		"srv sshd[20879]: kernel: [  970.699397] ",
	} {
		if a, ok := f.Match(pre + msg); !ok || a.String() != attacker {
			t.Errorf("%q: got %v %v", pre, a, ok)
		}
	}
	for _, bad := range []string{
		"Jan  2 15:04:05 host sshd[x]: ",
		"Jan  2 15:04:05 host cron[1]: ",
		"Jan  2 15:04:05 a b sshd[1]: ",
		"<38>1 2019-07-08T17:40:16Z host cron 1 - - ",
		"",
	} {
		if a, ok := f.Match(bad + msg); ok {
			t.Errorf("%q: got %v, want no match", bad, a)
		}
	}
}
