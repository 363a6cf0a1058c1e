package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestHold: [scan] hold, its window and pass time, and the errors (with
// file:line:col and the field) when they are wrong.
func TestHold(t *testing.T) {
	const rules = "[[rule]]\naction = \"allow\"\nport = \"22,3306,5432\"\nproto = \"tcp\"\n\n"
	for _, c := range []struct {
		name    string
		toml    string
		want    []uint16
		wantErr string
	}{
		{"off by default", "", nil, ""},
		{"held", "[scan]\nhold = [3306, 5432]\n", []uint16{3306, 5432}, ""},
		{"not opened", "[scan]\nhold = [8080]\n", nil, "moat.toml:7:9: scan.hold[1]: port 8080 is not opened by any rule"},
		{"ssh", "[scan]\nhold = [22]\n", nil, "moat.toml:7:9: scan.hold[1]: port 22 is an SSH port"},
		{"twice", "[scan]\nhold = [3306, 3306]\n", nil, "moat.toml:7:15: scan.hold[2]: port 3306 listed twice"},
		{"out of range", "[scan]\nhold = [70000]\n", nil, "moat.toml:7:9: scan.hold[1]: port 70000 out of range"},
		{"window past the retransmission", "[scan]\nhold = [3306]\nhold_window = \"1s\"\n", nil, "moat.toml:8:15: scan.hold_window: must be between 100ms and 900ms"},
		{"pass too short", "[scan]\nhold = [3306]\nhold_pass = \"5s\"\n", nil, "moat.toml:8:13: scan.hold_pass: must be between 1m and 7d"},
		{"without the block", "[scan]\nkernel_block = false\nhold = [3306]\n", nil, "moat.toml:8:9: scan.hold: needs kernel_block = true"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ld, err := load("moat.toml", []byte(rules+c.toml))
			if c.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q...", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := ld.Policy.Scan
			if !slices.Equal(s.Hold, c.want) || s.HoldWindow != 500*time.Millisecond && c.want != nil || s.HoldPass != time.Hour && c.want != nil {
				t.Errorf("hold %v window %v pass %v, want %v 500ms 1h", s.Hold, s.HoldWindow, s.HoldPass, c.want)
			}
		})
	}
}
