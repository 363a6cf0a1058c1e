package firewall

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moat-sec/moat/internal/config"
)

// TestTrapUDPRules: datagrams to UDP trap ports are logged, accepted only
// while the verifier's switch is on, and dropped otherwise; nothing in the
// kernel bans on them.
func TestTrapUDPRules(t *testing.T) {
	for _, c := range []struct {
		name     string
		toml     string
		want     []string
		wantNone []string
	}{
		{"udp traps", "[honeypot]\nudp = [1900, 5060]\n", []string{
			"set trapudp_on_v4 {",
			"set trapudp_on_v6 {",
			`udp dport @trap_udp limit rate 100/second burst 100 packets log prefix "moat:in:trap:udp " group 100 comment "moat trap udp log"`,
			`udp dport @trap_udp meta nfproto ipv4 ip daddr @trapudp_on_v4 counter accept comment "moat trap udp verify"`,
			`udp dport @trap_udp meta nfproto ipv6 ip6 daddr @trapudp_on_v6 counter accept comment "moat trap udp verify"`,
			`udp dport @trap_udp counter drop comment "moat trap udp"`,
		}, []string{"udp dport @trap_udp add @ban"}},
		{"no NFLOG group", "[logging]\nnflog_group = 0\n[honeypot]\nudp = [1900]\n", []string{
			`udp dport @trap_udp counter drop comment "moat trap udp"`,
		}, []string{"moat trap udp log"}},
		{"tcp traps only", "[honeypot]\ntcp = [2323]\n", nil, []string{"trapudp_on", "@trap_udp"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "moat.toml")
			if err := os.WriteFile(path, []byte(c.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			ld, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			tbl, err := Compile(ld.Policy)
			if err != nil {
				t.Fatal(err)
			}
			text := tbl.Text()
			for _, w := range c.want {
				if !strings.Contains(text, w) {
					t.Errorf("missing %q in\n%s", w, text)
				}
			}
			for _, w := range c.wantNone {
				if strings.Contains(text, w) {
					t.Errorf("unexpected %q in\n%s", w, text)
				}
			}
			// The verify rules come before the drop.
			if v, d := strings.Index(text, "moat trap udp verify"), strings.Index(text, `comment "moat trap udp"`); v > d {
				t.Error("the drop comes before the verifier's accept")
			}
		})
	}
	refs, elems := TrapUDPSwitch("moat")
	if len(refs) != 2 || refs[0].V6 || !refs[1].V6 || !elems[0].Addr().Is4() || elems[1].Bits() != 0 {
		t.Errorf("switch %+v %v", refs, elems)
	}
}
