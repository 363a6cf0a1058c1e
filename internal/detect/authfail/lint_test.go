package authfail

import (
	"errors"
	"strings"
	"testing"
)

func TestLintRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, pattern string
		col           int
		msg           string
	}{
		{"no host", `^Failed password for \S+`, 1, "no <HOST>"},
		{"two hosts", `^from <HOST> to <HOST>$`, 17, "more than one <HOST>"},
		{"unanchored", `Failed password for .* from <HOST> port \d+ ssh2$`, 1, "not anchored"},
		{"top-level alternation", `^Failed from <HOST>$|Invalid user .* from <HOST>`, 0, "more than one"},
		{"alternation without ^", `^a|b from <HOST>`, 1, "not anchored"},
		{"multi-line ^", `(?m)^from <HOST>`, 1, "not anchored"},
		// CVE-2013-2178: unanchored, greedy before the address
		{"greedy, not end-anchored", `^user .* from <HOST>`, 7, "wide wildcard \".*\" before <HOST>"},
		{"lazy, not end-anchored", `^user .*? from <HOST> port \d+`, 7, "wide wildcard \".*?\" before <HOST>"},
		{"plus", `^Failed .+ from <HOST>`, 9, "wide wildcard \".+\""},
		{"negated class not followed by its delimiter", `^user [^"]* from <HOST>`, 7, "wide wildcard"},
		{"repeated token group", `^(?: \S+)* from <HOST>`, 2, "wide wildcard"},
		{"bounded but wide", `^.{0,100} from <HOST>`, 2, "wide wildcard"},
		// the address's position must be fixed from the end
		{"wide after host", `^user .* from <HOST> port \d+.*$`, 30, "wide wildcard \".*\" after <HOST>"},
		{"optional host", `^Failed(?: from <HOST>)?$`, 8, "must not be inside a repeated or optional group"},
		{"reserved group", `^(?P<host>\S+) <HOST>$`, 2, "reserved"},
		{"bad regexp", `^from <HOST> (unclosed`, 14, "invalid regexp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile("test", []string{tc.pattern}, nil, "")
			if err == nil {
				t.Fatalf("Compile(%q) accepted", tc.pattern)
			}
			var pe *PatternError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *PatternError", err)
			}
			if pe.Pattern != tc.pattern || pe.Filter != "test" {
				t.Errorf("error names %q in %q, want %q in test", pe.Pattern, pe.Filter, tc.pattern)
			}
			if tc.col != 0 && pe.Col != tc.col {
				t.Errorf("column %d, want %d (%v)", pe.Col, tc.col, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
			if e := err.Error(); strings.ToLower(e[:1]) != e[:1] {
				t.Errorf("error %q is not lowercase", e)
			}
		})
	}
}

func TestLintAccepts(t *testing.T) {
	for _, p := range []string{
		`^Failed \S+ for .* from <HOST> port \d+ ssh2$`,            // (a) greedy, fixed suffix
		`^Failed \S+ for .*? from <HOST>(?: port \d+)?\s*$`,        // (a) lazy, fixed suffix
		`^user "[^"]*" from <HOST>`,                                // (b) delimited field
		`^\[client <HOST>(?::\d+)?\] .*`,                           // wildcard only after the address
		`^refused connect from \S+ \(<HOST>\)$`,                    // \S+ cannot cross a space
		`^(?:NOQUEUE|\w+): reject: RCPT from [^\s\[\]]*\[<HOST>\]`, // no wide wildcard
		`(?i)^failed login from <HOST>`,
	} {
		if _, err := Compile("test", []string{p}, nil, ""); err != nil {
			t.Errorf("Compile(%q): %v", p, err)
		}
	}
}

func TestLintPrefix(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{
		{`<SYSLOG:sshd>`, true},
		{`<SYSLOG?:nginx>\d{4}/\d\d/\d\d `, true},
		{`<SYSLOG:(?:httpd|apache2)(?:/\S+)?>`, true},
		{`^\S+ \S+ `, true},
		{`.* sshd: `, false},
		{`<SYSLOG:sshd>.*: `, false},
		{`<SYSLOG:sshd`, false},
		{`<SYSLOG:>`, false},
		{`<SYSLOG:sshd>from <HOST> `, false},
	} {
		_, err := Compile("test", []string{`^x <HOST>$`}, nil, tc.prefix)
		if (err == nil) != tc.ok {
			t.Errorf("prefix %q: err %v, want ok=%v", tc.prefix, err, tc.ok)
		}
	}
}

// Every builtin filter in every mode passes the lint (Builtin would fail
// otherwise), and every rule has a literal head for the prefilter.
func TestBuiltinsLoad(t *testing.T) {
	want := []string{"apache-auth", "apache-badbots", "apache-botsearch", "apache-noscript", "apache-overflows",
		"dovecot", "mysqld-auth", "nginx-botsearch", "nginx-http-auth", "nginx-limit-req", "postfix",
		"proftpd", "pure-ftpd", "recidive", "sshd", "vsftpd"}
	if got := BuiltinNames(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("BuiltinNames() = %v", got)
	}
	if got := strings.Join(BuiltinModes("sshd"), ","); got != "aggressive,ddos,extra,normal" {
		t.Errorf("sshd modes = %s", got)
	}
	for _, n := range BuiltinNames() {
		for _, m := range BuiltinModes(n) {
			f, err := Builtin(n, m)
			if err != nil {
				t.Errorf("Builtin(%s, %s): %v", n, m, err)
				continue
			}
			if f.Name() != n || f.Mode() != m || len(f.Names()) == 0 {
				t.Errorf("Builtin(%s, %s): name %q mode %q rules %v", n, m, f.Name(), f.Mode(), f.Names())
			}
			if n == "sshd" {
				for _, r := range f.rules {
					if r.lit == "" {
						t.Errorf("sshd rule %s has no literal head", r.label)
					}
				}
			}
		}
	}
	if _, err := Builtin("sshd", "paranoid"); err == nil || !strings.Contains(err.Error(), "no mode") {
		t.Errorf("unknown mode: %v", err)
	}
	if _, err := Builtin("telnetd", ""); err == nil || !strings.Contains(err.Error(), "no builtin filter") {
		t.Errorf("unknown filter: %v", err)
	}
	a, _ := Builtin("sshd", "")
	b, _ := Builtin("sshd", "normal")
	if a != b {
		t.Error("the default mode is not normal")
	}
}
