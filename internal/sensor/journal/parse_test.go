package journal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/moat-sec/moat/internal/event"
	"github.com/moat-sec/moat/internal/sensor/logtail"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.TrimSpace(string(b)))
}

func TestParse(t *testing.T) {
	tests := []struct {
		file   string
		want   event.Observation
		cursor string // prefix
		err    error
	}{
		{
			file: "sshd.json",
			want: event.Observation{
				Source: "journal:ssh.service", Time: time.UnixMicro(1700000000123456),
				Line:    "sshd[1234]: Failed password for root from 203.0.113.10 port 22 ssh2",
				Trusted: true, Unit: "ssh.service", Comm: "sshd", UID: 0, PID: 1234,
			},
			cursor: "s=4f3c1b5e8a6d4e2f9b0c7d1e2f3a4b5c;i=1a2b3;",
		},
		{
			// MESSAGE was not UTF-8: an array of bytes, kept byte for byte.
			file: "binary.json",
			want: event.Observation{
				Source: "journal:ssh.service", Time: time.UnixMicro(1700000001000000),
				Line:    "sshd[1240]: Invalid user \xff\xfeadm\x1b[2J from 203.0.113.7 port 4242",
				Trusted: true, Unit: "ssh.service", Comm: "sshd", UID: 0, PID: 1240,
			},
			cursor: "s=4f3c1b5e8a6d4e2f9b0c7d1e2f3a4b5c;i=1a2b4;",
		},
		{
			// SECURITY A7: `logger -t 'sshd[4242]' …` by uid 1000, in
			// ssh.service's cgroup (no pam_systemd). The line looks like
			// sshd's; the trusted fields say logger and uid 1000, and the
			// claimed PID 4242 is not used.
			file: "logger-forgery.json",
			want: event.Observation{
				Source: "journal:ssh.service", Time: time.UnixMicro(1700000002000000),
				Line:    "sshd[5555]: Failed password for root from 203.0.113.10 port 22 ssh2",
				Trusted: true, Unit: "ssh.service", Comm: "logger", UID: 1000, PID: 5555,
			},
			cursor: "s=4f3c1b5e8a6d4e2f9b0c7d1e2f3a4b5c;i=1a2c0;",
		},
		{
			// No _UID, _PID, _COMM or unit: UID -1, never root by default.
			file: "kernel.json",
			want: event.Observation{
				Source: "journal", Time: time.UnixMicro(1700000003000000),
				Line:    "kernel: moat-scan: IN=eth0 SRC=198.51.100.9 DST=192.0.2.1 PROTO=TCP DPT=23 SYN",
				Trusted: true, UID: -1,
			},
			cursor: "s=4f3c1b5e8a6d4e2f9b0c7d1e2f3a4b5c;i=1a2c1;",
		},
		{
			// A field sent twice is an array of values: the first is used.
			file: "multi-valued.json",
			want: event.Observation{
				Source: "journal:user@1000.service", Time: time.UnixMicro(1700000004000000),
				Line:    "sshd[777]: first",
				Trusted: true, Unit: "user@1000.service", Comm: "python3", UID: 1000, PID: 777,
			},
			cursor: "s=4f3c1b5e8a6d4e2f9b0c7d1e2f3a4b5c;i=1a2c2;",
		},
		{file: "no-message.json", cursor: "s=4f3c1b5e8a6d4e2f9b0c7d1e2f3a4b5c;i=1a2c3;", err: ErrNoMessage},
		{file: "message-null.json", cursor: "s=4f3c1b5e8a6d4e2f9b0c7d1e2f3a4b5c;i=1a2c4;", err: ErrNoMessage},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			o, cursor, err := Parse(readFixture(t, tc.file))
			if !strings.HasPrefix(cursor, tc.cursor) || len(cursor) < 60 {
				t.Errorf("cursor %q, want %q…", cursor, tc.cursor)
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o != tc.want {
				t.Errorf("got  %+v\nwant %+v", o, tc.want)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	for _, in := range []string{
		``,
		`not json`,
		`[]`,
		`{"MESSAGE":"x"}`,
		`{"__REALTIME_TIMESTAMP":"soon","MESSAGE":"x"}`,
		`{"__REALTIME_TIMESTAMP":"-1","MESSAGE":"x"}`,
		`{"__REALTIME_TIMESTAMP":17,"MESSAGE":"x"}`,
	} {
		if o, _, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", in, o)
		}
	}
}

func TestParseOddFields(t *testing.T) {
	tests := []struct {
		in   string
		line string
		uid  int
		pid  int
	}{
		{`{"__REALTIME_TIMESTAMP":"1","MESSAGE":"m"}`, "m", -1, 0},
		{`{"__REALTIME_TIMESTAMP":"1","MESSAGE":"m","_COMM":"cron","_PID":"9","_UID":"33"}`, "cron[9]: m", 33, 9},
		{`{"__REALTIME_TIMESTAMP":"1","MESSAGE":"m","SYSLOG_IDENTIFIER":"","_COMM":"cron"}`, "cron: m", -1, 0},
		{`{"__REALTIME_TIMESTAMP":"1","MESSAGE":"m","_UID":"root","_PID":"-4"}`, "m", -1, 0},
		{`{"__REALTIME_TIMESTAMP":"1","MESSAGE":[109,0,10,110]}`, "m\x00\nn", -1, 0},
		{`{"__REALTIME_TIMESTAMP":"1","MESSAGE":[300]}`, "", 0, 0}, // not bytes: no message
		{`{"__REALTIME_TIMESTAMP":"1","MESSAGE":"a\u0000b"}`, "a\x00b", -1, 0},
	}
	for _, tc := range tests {
		o, _, err := Parse([]byte(tc.in))
		if tc.line == "" {
			if !errors.Is(err, ErrNoMessage) {
				t.Errorf("Parse(%s): err %v, want ErrNoMessage", tc.in, err)
			}
			continue
		}
		if err != nil || o.Line != tc.line || o.UID != tc.uid || o.PID != tc.pid {
			t.Errorf("Parse(%s) = %q uid %d pid %d, %v; want %q uid %d pid %d", tc.in, o.Line, o.UID, o.PID, err, tc.line, tc.uid, tc.pid)
		}
	}
}

func TestParseCut(t *testing.T) {
	in := `{"__REALTIME_TIMESTAMP":"1","SYSLOG_IDENTIFIER":"sshd","_PID":"1","MESSAGE":"` + strings.Repeat("A ", logtail.DefaultMaxLine) + `"}`
	o, _, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if !o.Truncated || len(o.Line) != logtail.DefaultMaxLine || !strings.HasPrefix(o.Line, "sshd[1]: A A ") {
		t.Errorf("cut line: truncated %v, %d bytes, %.20q", o.Truncated, len(o.Line), o.Line)
	}
	o, _, _ = parse([]byte(in), 10)
	if o.Line != "sshd[1]: A" || !o.Truncated {
		t.Errorf("parse at 10 bytes: %q %v", o.Line, o.Truncated)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"sshd.json", "binary.json", "logger-forgery.json", "kernel.json", "multi-valued.json", "no-message.json", "message-null.json"} {
		f.Add(readFixture(f, name))
	}
	f.Add([]byte(`{"__REALTIME_TIMESTAMP":"1","MESSAGE":[[1,2],"x"],"_PID":["1","2"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, _, err := parse(data, 64)
		if err != nil {
			return
		}
		if len(o.Line) > 64 || !o.Trusted || o.UID < -1 || o.PID < 0 {
			t.Fatalf("bad observation %+v", o)
		}
		if !strings.HasPrefix(o.Source, "journal") {
			t.Fatalf("source %q", o.Source)
		}
		_ = utf8.ValidString(o.Line) // any bytes are allowed; no crash is the point
	})
}
