package config

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/moat-sec/moat/internal/policy"
)

// TestRedirects: the [[redirect]] tables, what each form means, and the
// errors (with file:line:col and the field) when one is wrong.
func TestRedirects(t *testing.T) {
	const nets = "[networks]\nadmins = [\"198.51.100.0/24\", \"2001:db8:a::/64\"]\n\n"
	admins := policy.Endpoint{Text: "admins", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:a::/64")}}
	for _, c := range []struct {
		name    string
		toml    string
		want    policy.Redirect
		wantErr string
	}{
		{"banned to a host per family", "[[redirect]]\nport = 80\nto = [\"192.0.2.9:8080\", \"[2001:db8::9]:8080\"]\n",
			policy.Redirect{Proto: policy.ProtoTCP, Port: 80, Banned: true, To4: netip.MustParseAddrPort("192.0.2.9:8080"), To6: netip.MustParseAddrPort("[2001:db8::9]:8080")}, ""},
		{"outside a network to a local port", "[[redirect]]\nport = 22\nfrom = \"!admins\"\nto = [\"2222\"]\n",
			policy.Redirect{Proto: policy.ProtoTCP, Port: 22, From: admins, Except: true, LocalPort: 2222}, ""},
		{"udp from a prefix", "[[redirect]]\nport = 53\nproto = \"udp\"\nfrom = \"203.0.113.0/24\"\nto = [\":5353\"]\n",
			policy.Redirect{Proto: policy.ProtoUDP, Port: 53, From: policy.Endpoint{Text: "203.0.113.0/24", Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}, LocalPort: 5353}, ""},
		{"no target", "[[redirect]]\nport = 80\n", policy.Redirect{}, "moat.toml:4:3: redirect[1].to: missing"},
		{"port out of range", "[[redirect]]\nport = 0\nto = [\"2222\"]\n", policy.Redirect{}, "moat.toml:5:8: redirect[1].port: port 0 out of range"},
		{"bad proto", "[[redirect]]\nport = 80\nproto = \"icmp\"\nto = [\"2222\"]\n", policy.Redirect{}, "moat.toml:6:9: redirect[1].proto: proto \"icmp\""},
		{"unknown network", "[[redirect]]\nport = 22\nfrom = \"!office\"\nto = [\"2222\"]\n", policy.Redirect{}, "moat.toml:6:8: redirect[1].from: \"!office\": not \"banned\", a network name or a prefix"},
		{"everyone", "[[redirect]]\nport = 22\nfrom = \"0.0.0.0/0\"\nto = [\"2222\"]\n", policy.Redirect{}, "moat.toml:6:8: redirect[1].from: \"0.0.0.0/0\" matches every source"},
		{"not any", "[[redirect]]\nport = 22\nfrom = \"!any\"\nto = [\"2222\"]\n", policy.Redirect{}, "moat.toml:6:8: redirect[1].from:"},
		{"loopback target", "[[redirect]]\nport = 80\nto = [\"127.0.0.1:8080\"]\n", policy.Redirect{}, "moat.toml:6:7: redirect[1].to: \"127.0.0.1:8080\": the kernel does not route"},
		{"two of a family", "[[redirect]]\nport = 80\nto = [\"192.0.2.9:1\", \"192.0.2.10:1\"]\n", policy.Redirect{}, "moat.toml:6:7: redirect[1].to: \"192.0.2.10:1\": two targets of the same family"},
		{"local and host", "[[redirect]]\nport = 80\nto = [\"2222\", \"192.0.2.9:1\"]\n", policy.Redirect{}, "moat.toml:6:7: redirect[1].to: \"2222\": a port on this host serves both families"},
		{"garbage target", "[[redirect]]\nport = 80\nto = [\"honeypot.example\"]\n", policy.Redirect{}, "moat.toml:6:7: redirect[1].to: \"honeypot.example\": want a port"},
		{"to itself", "[[redirect]]\nport = 80\nto = [\"80\"]\n", policy.Redirect{}, "moat.toml:6:7: redirect[1].to: port 80 redirects to itself"},
		{"twice", "[[redirect]]\nport = 80\nto = [\"2222\"]\n[[redirect]]\nport = 80\nto = [\"2223\"]\n", policy.Redirect{}, "moat.toml:8:8: redirect[2].port: tcp/80 is already redirected by redirect 1"},
		{"misspelt key", "[[redirect]]\nport = 80\ntoo = [\"2222\"]\n", policy.Redirect{}, "moat.toml:6:1:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ld, err := load("moat.toml", []byte(nets+c.toml))
			if c.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q...", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ld.Policy.Redirects) != 1 {
				t.Fatalf("%d redirects, want 1", len(ld.Policy.Redirects))
			}
			got := ld.Policy.Redirects[0]
			got.Origin = policy.Origin{}
			if diff := cmp.Diff(c.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
				cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
