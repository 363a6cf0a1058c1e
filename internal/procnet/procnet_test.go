package procnet

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 11 1 0000000000000000 100 0 0 10 0
   1: 0164A8C6:0016 0A6433C6:C350 01 00000000:00000000 02:000A7B2E 00000000     0        0 22 4 0000000000000000 20 4 1 10 -1
`
	got, err := Parse(strings.NewReader(tcp))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].State != Listen || got[0].Local.Port() != 22 || got[0].Inode != "11" {
		t.Fatalf("%+v", got)
	}
	if got[1].Local.String() != "198.168.100.1:22" || got[1].Peer.String() != "198.51.100.10:50000" || got[1].State != Established {
		t.Errorf("%+v", got[1])
	}
	const tcp6 = "header\n   0: B80D012000000A000000000001000000:0016 0000000000000000FFFF00000A6433C6:D6D8 01 0 0 0 0 0 0 33\n"
	got, err = Parse(strings.NewReader(tcp6))
	if err != nil || got[0].Local.String() != "[2001:db8:a::1]:22" || got[0].Peer.String() != "198.51.100.10:55000" {
		t.Errorf("%+v %v", got, err)
	}
	for _, bad := range []string{"h\n 0: 0100007F 00000000:0000 0A\n", "h\n 0: 0100007:0016 00000000:0000 0A\n", "h\n 0: 0100007F:0016 00000000:0000 ZZ\n"} {
		if _, err := Parse(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("h\n   0: 0164A8C6:0016 0A6433C6:C350 01 0 0 0 0 0 0 22\n")
	f.Fuzz(func(t *testing.T, s string) {
		socks, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, so := range socks {
			if !so.Local.Addr().IsValid() || so.Local.Addr().Is4In6() {
				t.Fatalf("bad local %v", so.Local)
			}
		}
	})
}
