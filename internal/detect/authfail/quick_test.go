package authfail

import "testing"

func TestQuickBuiltins(t *testing.T) {
	for _, n := range BuiltinNames() {
		for _, m := range BuiltinModes(n) {
			if _, err := Builtin(n, m); err != nil {
				t.Errorf("%s/%s: %v", n, m, err)
			}
		}
	}
	f, err := Builtin("sshd", ""); if err != nil { t.Fatal(err) }
	for _, l := range []string{
		"Feb 25 14:34:10 belka sshd[31602]: Failed password for invalid user ROOT from 194.117.26.69 port 50273 ssh2",
		"Nov 11 08:04:51 redbamboo sshd[2737]: Failed password for invalid user from 10.10.1.1 from 127.0.0.1 port 58946 ssh2",
		"Jan  5 01:31:41 www sshd[1643]: ROOT LOGIN REFUSED FROM ::ffff:1.2.3.4",
	} {
		a, ok := f.Match(l)
		t.Log(a, ok)
	}
}
