package config

import (
	"strings"
	"testing"
)

// TestHoneypotKeys: tcp_bytes and udp_verify, their defaults, their range
// and the errors (with file:line) when they are wrong.
func TestHoneypotKeys(t *testing.T) {
	for _, c := range []struct {
		name    string
		toml    string
		bytes   int
		verify  bool
		wantErr string // "" for a valid file
	}{
		{"defaults", "[honeypot]\ntcp = [2323]\nudp = [1900]\n", 0, false, ""},
		{"bytes", "[honeypot]\ntcp = [2323]\ntcp_bytes = 512\n", 512, false, ""},
		{"most bytes", "[honeypot]\ntcp_bytes = 4096\n", 4096, false, ""},
		{"verify", "[honeypot]\nudp = [1900]\nudp_verify = true\n", 0, true, ""},
		{"too many bytes", "[honeypot]\ntcp = [2323]\ntcp_bytes = 4097\n", 0, false, "moat.toml:3:13: honeypot.tcp_bytes: 4097 out of range 0-4096"},
		{"negative bytes", "[honeypot]\n\ntcp_bytes = -1\n", 0, false, "moat.toml:3:13: honeypot.tcp_bytes: -1 out of range 0-4096"},
		{"bytes as a string", "[honeypot]\ntcp_bytes = \"1k\"\n", 0, false, "moat.toml:2:"},
		{"verify without the listener", "[honeypot]\nudp = [1900]\nlisten = false\nudp_verify = true\n", 0, false, "moat.toml:4:14: honeypot.udp_verify: needs listen = true"},
		{"misspelt", "[honeypot]\nudp_verfy = true\n", 0, false, "moat.toml:2:1:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ld, err := load("moat.toml", []byte(c.toml))
			if c.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q...", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ld.Honeypot.TCPBytes != c.bytes || ld.Honeypot.UDPVerify != c.verify {
				t.Errorf("tcp_bytes %d, udp_verify %v; want %d, %v", ld.Honeypot.TCPBytes, ld.Honeypot.UDPVerify, c.bytes, c.verify)
			}
		})
	}
}
