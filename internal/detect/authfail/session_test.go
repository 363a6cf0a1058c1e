package authfail

import (
	"fmt"
	"strings"
	"testing"
)

// TestSessionSemantics walks connections through the multi-line rules.
// Each step is "pid|message|want" (want: an address, or - for none).
func TestSessionSemantics(t *testing.T) {
	for _, tc := range []struct {
		name, mode string
		steps      []string
	}{
		{"pending failure gets the address at disconnect", "normal", []string{
			"10|Disconnecting: Too many authentication failures for root [preauth]|-",
			"10|Connection closed by 198.51.100.7 port 4 [preauth]|198.51.100.7",
			"10|Connection closed by 198.51.100.7 port 4 [preauth]|-",
		}},
		{"another pid does not complete it", "normal", []string{
			"11|Disconnecting: Too many authentication failures [preauth]|-",
			"12|Connection closed by 198.51.100.7 port 4|-",
		}},
		{"the connection's address serves later failures", "extra", []string{
			"13|Connection from 198.51.100.7 port 4 on 192.0.2.1 port 22|-",
			"13|fatal: Unable to negotiate a key exchange method [preauth]|198.51.100.7",
			"13|fatal: Unable to negotiate a key exchange method [preauth]|198.51.100.7",
		}},
		{"a success wipes helper failures of one user", "normal", []string{
			"14|pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.7  user=alice|-",
			"14|Accepted password for alice from 198.51.100.7 port 4 ssh2|-",
			"14|Connection closed by 198.51.100.7 port 4|-",
		}},
		{"several user names before a success count", "normal", []string{
			"15|pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=root rhost=198.51.100.7|-",
			"15|pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=admin rhost=198.51.100.7|198.51.100.7",
			"15|Accepted password for alice from 198.51.100.7 port 4 ssh2|198.51.100.7",
		}},
		{"but not when sshd already counted the attempts", "normal", []string{
			"16|pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.7  user=root|-",
			"16|Failed password for root from 198.51.100.7 port 4 ssh2|198.51.100.7",
			"16|pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.7  user=alice|-",
			"16|Failed password for alice from 198.51.100.7 port 4 ssh2|198.51.100.7",
			"16|Accepted password for bob from 198.51.100.7 port 4 ssh2|-",
		}},
		{"public keys tried are not failures until the disconnect says so", "normal", []string{
			"17|Failed publickey for git from 198.51.100.7 port 4 ssh2: RSA SHA256:x|-",
			"17|Failed publickey for git from 198.51.100.7 port 4 ssh2: ED25519 SHA256:y|-",
			"17|Disconnecting: Too many authentication failures for git [preauth]|198.51.100.7",
		}},
		{"ddos: a preauth close is a failure, a plain one helps", "ddos", []string{
			"18|error: kex_exchange_identification: Connection closed by remote host|-",
			"18|Connection closed by 198.51.100.7 port 4|198.51.100.7",
			"19|Connection closed by 198.51.100.8 port 4 [preauth]|198.51.100.8",
		}},
		{"a bad address is not remembered", "normal", []string{
			"20|Disconnecting: Too many authentication failures [preauth]|-",
			"20|Connection closed by 192.030.0.6 port 4 [preauth]|-",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustBuiltin(t, "sshd", tc.mode).NewSession(0)
			for i, step := range tc.steps {
				p := strings.SplitN(step, "|", 3)
				line := fmt.Sprintf("Mar 10 12:00:00 host sshd[%s]: %s", p[0], p[1])
				a, ok := s.Match(line)
				got := "-"
				if ok {
					got = a.String()
				}
				if got != p[2] {
					t.Errorf("step %d: %q: got %s, want %s", i+1, p[1], got, p[2])
				}
			}
		})
	}
}

func TestSessionBounded(t *testing.T) {
	s := mustBuiltin(t, "sshd", "normal").NewSession(50)
	for i := range 1000 {
		s.Match(fmt.Sprintf("Mar 10 12:00:00 host sshd[%d]: Connection from 198.51.100.7 port 4 on 192.0.2.1 port 22", i))
	}
	if n := s.Conns(); n != 50 {
		t.Errorf("%d connections kept, want 50", n)
	}
}
