package lockout

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moat-sec/moat/internal/policy"
)

const procTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0164A8C6:0016 0A6433C6:C350 01 00000000:00000000 02:000A7B2E 00000000     0        0 2 4 0000000000000000 20 4 1 10 -1
   2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
`

const procTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: B80D012000000A000000000001000000:0016 B80D012000000A000000000010000000:D6D8 01 00000000:00000000 02:00000000 00000000     0        0 4 1 0000000000000000 20 4 1 10 -1
`

func TestSessions(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tcp"), []byte(procTCP), 0o644)
	os.WriteFile(filepath.Join(dir, "tcp6"), []byte(procTCP6), 0o644)
	env := map[string]string{"SSH_CONNECTION": "198.51.100.10 50000 198.168.100.1 22"}
	got, err := Sessions(func(k string) string { return env[k] }, dir, []uint16{22})
	if err != nil {
		t.Fatal(err)
	}
	var peers []string
	for _, s := range got {
		peers = append(peers, s.Peer.String()+">"+s.Local.String())
	}
	// The SSH_CONNECTION session is also socket 1: listed once. Socket 2
	// is not on an SSH port; the listening socket is not established.
	want := "198.51.100.10:50000>198.168.100.1:22 [2001:db8:a::10]:55000>[2001:db8:a::1]:22"
	if strings.Join(peers, " ") != want {
		t.Errorf("sessions:\n got %s\nwant %s", strings.Join(peers, " "), want)
	}
}

func TestFromEnv(t *testing.T) {
	for in, ok := range map[string]bool{
		"203.0.113.10 51234 192.0.2.1 22":    true,
		"::ffff:203.0.113.10 1 192.0.2.1 22": true,
		"fe80::1%eth0 1 fe80::2%eth0 22":     true,
		"":                                   false,
		"1.2.3.4 x 5.6.7.8 22":               false,
		"1.2.3.4 1 5.6.7.8":                  false,
	} {
		s, got := fromEnv(in)
		if got != ok {
			t.Errorf("fromEnv(%q) ok=%v", in, got)
		}
		if got && (s.Peer.Addr().Is4In6() || s.Peer.Addr().Zone() != "") {
			t.Errorf("fromEnv(%q) = %v: want unmapped, zone-free", in, s.Peer)
		}
	}
}

func pol(incoming policy.Action, rules ...policy.Rule) *policy.Policy {
	return &policy.Policy{Incoming: incoming, Outgoing: policy.Allow, Routed: policy.Deny, SSHPorts: []uint16{22},
		Guards: policy.Guards{Loopback: true, Established: true}, Rules: rules}
}

func sshFrom(prefix string) policy.Rule {
	r := policy.Rule{Action: policy.Allow, Direction: policy.In, Proto: policy.ProtoTCP, To: policy.Endpoint{Ports: policy.Ports{{First: 22, Last: 22}}}}
	if prefix != "" {
		r.From = policy.Endpoint{Text: prefix, Prefixes: []netip.Prefix{netip.MustParsePrefix(prefix)}}
	}
	return r
}

func TestCheck(t *testing.T) {
	admin := Session{Peer: netip.MustParseAddrPort("203.0.113.10:50000"), Local: netip.MustParseAddrPort("192.0.2.1:22")}
	local := Session{Peer: netip.MustParseAddrPort("127.0.0.1:50000"), Local: netip.MustParseAddrPort("127.0.0.1:22")}
	for _, c := range []struct {
		name     string
		p        *policy.Policy
		sessions []Session
		cut      int
		noSSH    bool
		redirect int
	}{
		{"admitted", pol(policy.Deny, sshFrom("203.0.113.0/24")), []Session{admin}, 0, false, 0},
		{"cut", pol(policy.Deny, sshFrom("198.51.100.0/24")), []Session{admin}, 1, false, 0},
		{"no ssh at all", pol(policy.Deny), nil, 0, true, 0},
		{"reject cuts too", pol(policy.Reject, sshFrom("198.51.100.0/24")), []Session{admin}, 1, false, 0},
		{"allow default", pol(policy.Allow), []Session{admin}, 0, false, 0},
		{"loopback session", pol(policy.Deny, sshFrom("198.51.100.0/24")), []Session{local}, 0, false, 0},
		{"redirected outside admins", redirected(pol(policy.Deny, sshFrom("")), "198.51.100.0/24", true), []Session{admin}, 0, false, 1},
		{"redirected inside a network", redirected(pol(policy.Deny, sshFrom("")), "203.0.113.0/24", false), []Session{admin}, 0, false, 1},
		{"not redirected: an admin", redirected(pol(policy.Deny, sshFrom("")), "203.0.113.0/24", true), []Session{admin}, 0, false, 0},
		{"not redirected: allowlisted", allowlisted(redirected(pol(policy.Deny, sshFrom("")), "198.51.100.0/24", true), "203.0.113.10/32"), []Session{admin}, 0, false, 0},
		{"not redirected: only banned sources", banned(pol(policy.Deny, sshFrom(""))), []Session{admin}, 0, false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Check(c.p, c.sessions)
			if c.cut == 0 && !c.noSSH && c.redirect == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			le, ok := err.(*Error)
			if !ok {
				t.Fatalf("err = %v, want *Error", err)
			}
			if len(le.Cut) != c.cut || le.NoSSH != c.noSSH || len(le.Redirected) != c.redirect {
				t.Errorf("cut %d noSSH %v redirected %d, want %d %v %d: %v", len(le.Cut), le.NoSSH, len(le.Redirected), c.cut, c.noSSH, c.redirect, err)
			}
		})
	}
}

// redirected adds a redirect of SSH from the sources in (or, with except,
// outside) prefix to a local honeypot port.
func redirected(p *policy.Policy, prefix string, except bool) *policy.Policy {
	p.Redirects = append(p.Redirects, policy.Redirect{Proto: policy.ProtoTCP, Port: 22, LocalPort: 2222, Except: except,
		From: policy.Endpoint{Text: prefix, Prefixes: []netip.Prefix{netip.MustParsePrefix(prefix)}}})
	return p
}

func banned(p *policy.Policy) *policy.Policy {
	p.Redirects = append(p.Redirects, policy.Redirect{Proto: policy.ProtoTCP, Port: 22, LocalPort: 2222, Banned: true})
	return p
}

func allowlisted(p *policy.Policy, prefix string) *policy.Policy {
	p.Allowlist = append(p.Allowlist, netip.MustParsePrefix(prefix))
	return p
}
