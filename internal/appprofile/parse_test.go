package appprofile

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func tcp(first, last uint16) Port  { return Port{Proto: "tcp", First: first, Last: last} }
func udp(first, last uint16) Port  { return Port{Proto: "udp", First: first, Last: last} }
func both(first, last uint16) Port { return Port{First: first, Last: last} }

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Profile
	}{
		{
			name: "ufw style",
			in:   "[Nginx Full]\ntitle=Web Server (Nginx, HTTP + HTTPS)\ndescription=Small, but very powerful and efficient web server\nports=80,443/tcp\n",
			want: []Profile{{
				Name: "Nginx Full", Title: "Web Server (Nginx, HTTP + HTTPS)",
				Description: "Small, but very powerful and efficient web server",
				Ports:       []Port{tcp(80, 80), tcp(443, 443)}, Source: "f:1",
			}},
		},
		{
			name: "all port forms",
			in:   "[X]\nports=80,443/tcp|8000:8100/udp|53",
			want: []Profile{{Name: "X", Title: "X", Source: "f:1",
				Ports: []Port{tcp(80, 80), tcp(443, 443), udp(8000, 8100), both(53, 53)}}},
		},
		{
			name: "list without protocol",
			in:   "[X]\nports=137,138",
			want: []Profile{{Name: "X", Title: "X", Source: "f:1", Ports: []Port{both(137, 137), both(138, 138)}}},
		},
		{
			name: "extremes and one-port range",
			in:   "[X]\nports=1/tcp|65535/udp|1:65535/tcp|7:7/udp|00022/tcp",
			want: []Profile{{Name: "X", Title: "X", Source: "f:1",
				Ports: []Port{tcp(1, 1), udp(65535, 65535), tcp(1, 65535), udp(7, 7), tcp(22, 22)}}},
		},
		{
			name: "spaces, upper-case keys and protocol, colon delimiter",
			in:   "  [a b]  \r\n  TITLE : T  \r\nPorts= 80 , 443 / TCP | 53 \r\n",
			want: []Profile{{Name: "a b", Title: "T", Source: "f:1", Ports: []Port{tcp(80, 80), tcp(443, 443), both(53, 53)}}},
		},
		{
			name: "comments, blank lines, BOM, several profiles",
			in:   "\uFEFF# comment\n; other comment\n\n[A]\n  # indented comment\nports=1/tcp\n\n[B.c_d-e+f]\nports=2/udp\n",
			want: []Profile{
				{Name: "A", Title: "A", Source: "f:4", Ports: []Port{tcp(1, 1)}},
				{Name: "B.c_d-e+f", Title: "B.c_d-e+f", Source: "f:8", Ports: []Port{udp(2, 2)}},
			},
		},
		{
			name: "continuation lines",
			in:   "[A]\ntitle=one\n two\n\tthree\ndescription=\n  d\nports=5/tcp\n",
			want: []Profile{{Name: "A", Title: "one two three", Description: "d", Source: "f:1", Ports: []Port{tcp(5, 5)}}},
		},
		{
			name: "name starting with a digit",
			in:   "[3proxy]\nports=3128/tcp",
			want: []Profile{{Name: "3proxy", Title: "3proxy", Source: "f:1", Ports: []Port{tcp(3128, 3128)}}},
		},
		{
			name: "64-character name",
			in:   "[" + strings.Repeat("n", 64) + "]\nports=1/tcp",
			want: []Profile{{Name: strings.Repeat("n", 64), Title: strings.Repeat("n", 64), Source: "f:1", Ports: []Port{tcp(1, 1)}}},
		},
		{name: "empty file", in: "", want: nil},
		{name: "only comments", in: "# nothing\n;here\n", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("f", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		line int
		msg  string // substring of ParseError.Msg
	}{
		{"port 0", "[A]\nports=0/tcp", 2, "port 0 out of range 1-65535"},
		{"port too big", "[A]\nports=65536/tcp", 2, "port 65536 out of range"},
		{"port huge", "[A]\nports=99999999999999999999999/tcp", 2, "out of range"},
		{"range end too big", "[A]\nports=1:70000/udp", 2, "port 70000 out of range"},
		{"reversed range", "[A]\n\nports=200:100/tcp", 3, `invalid port range "200:100": 200 is greater than 100`},
		{"range without protocol", "[A]\nports=22/tcp|6000:6010", 2, `port range "6000:6010" needs a protocol`},
		{"not a number", "[A]\nports=http/tcp", 2, `invalid port "http"`},
		{"negative", "[A]\nports=-1/tcp", 2, `invalid port "-1"`},
		{"plus sign", "[A]\nports=+22/tcp", 2, `invalid port "+22"`},
		{"half range", "[A]\nports=22:/tcp", 2, "missing port number"},
		{"bad protocol", "[A]\nports=22/sctp", 2, `invalid protocol "sctp"`},
		{"two protocols", "[A]\nports=22/tcp/udp", 2, `invalid protocol "tcp/udp"`},
		{"empty protocol", "[A]\nports=22/", 2, `invalid protocol ""`},
		{"no port before protocol", "[A]\nports=/tcp", 2, `no port in "/tcp"`},
		{"empty ports", "[A]\nports=", 2, "empty ports value"},
		{"empty group", "[A]\nports=22/tcp||53", 2, "empty port group"},
		{"trailing bar", "[A]\nports=22/tcp|", 2, "empty port group"},
		{"empty list item", "[A]\nports=22,,23/tcp", 2, "empty port in"},
		{"inline comment", "[A]\nports=22/tcp # ssh", 2, "invalid protocol"},
		{"missing ports", "# x\n[A]\ntitle=no ports\n[B]\nports=1/tcp", 2, `profile "A" has no ports`},
		{"missing ports at end", "[A]\nports=1/tcp\n[B]\ntitle=t\n", 3, `profile "B" has no ports`},
		{"unknown key", "[A]\nport=22/tcp", 2, `unknown key "port"`},
		{"duplicate key", "[A]\nports=1/tcp\ntitle=a\nPorts=2/tcp", 4, `duplicate key "ports" (first set at line 2)`},
		{"key before section", "ports=22/tcp\n[A]", 1, "before the first [name] section"},
		{"missing key", "[A]\n=22", 2, "missing key"},
		{"garbage line", "[A]\nports=1/tcp\nhello world", 3, `expected "[name]", "key=value" or a comment`},
		{"unterminated header", "[A\nports=1/tcp", 1, "section header does not end"},
		{"trailing text after header", "[A] ; comment\nports=1/tcp", 1, "section header does not end"},
		{"empty name", "[]\nports=1/tcp", 1, "empty profile name"},
		{"name too long", "[" + strings.Repeat("n", 65) + "]\nports=1/tcp", 1, "longer than 64"},
		{"bad character", "[a/b]\nports=1/tcp", 1, `invalid character '/'`},
		{"non-ASCII letter", "[caf\u00e9]\nports=1/tcp", 1, `invalid character 'é'`},
		{"leading space", "[ a]\nports=1/tcp", 1, "must start with a letter or digit"},
		{"leading dot", "[.a]\nports=1/tcp", 1, "must start with a letter or digit"},
		{"trailing space", "[a ]\nports=1/tcp", 1, "ends with a space"},
		{"number name", "[22]\nports=1/tcp", 1, "is a number"},
		{"duplicate profile", "[A]\nports=1/tcp\n\n[a]\nports=2/tcp", 4, `profile "a" already defined at line 1`},
		{"ports continuation", "[A]\nports=1/tcp\n  |2/tcp", 3, "must be on one line"},
		{"control character", "[A]\ntitle=bad\x1b[31m\nports=1/tcp", 2, "control character U+001B"},
		{"C1 control character", "[A]\ndescription=bad\u009b31m\nports=1/tcp", 2, "control character U+009B"},
		{"control in continuation", "[A]\ntitle=ok\n  bad\x07\nports=1/tcp", 3, "control character U+0007"},
		{"invalid UTF-8", "[A]\nports=1/tcp\ntitle=\xff", 3, "invalid UTF-8"},
		{"value too long", "[A]\ntitle=" + strings.Repeat("x", 1025) + "\nports=1/tcp", 2, "value longer than 1024"},
		{"key too long", "[A]\n" + strings.Repeat("k", 65) + "=1", 2, "key longer than 64"},
		{"file too big", "[A]\nports=1/tcp\n" + strings.Repeat("#", MaxFileSize), 0, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("dir/file", []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded with %v, want error at line %d", got, tt.line)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *ParseError", err, err)
			}
			if pe.Path != "dir/file" || pe.Line != tt.line || !strings.Contains(pe.Msg, tt.msg) {
				t.Errorf("error = {%q %d %q}, want {%q %d containing %q}", pe.Path, pe.Line, pe.Msg, "dir/file", tt.line, tt.msg)
			}
			wantPrefix := "dir/file: "
			if tt.line > 0 {
				wantPrefix = "dir/file:" + strconv.Itoa(tt.line) + ": "
			}
			if !strings.HasPrefix(err.Error(), wantPrefix) {
				t.Errorf("Error() = %q, want prefix %q", err.Error(), wantPrefix)
			}
		})
	}
}

func TestPortString(t *testing.T) {
	tests := []struct {
		p    Port
		want string
	}{
		{tcp(22, 22), "22/tcp"},
		{udp(60000, 61000), "60000:61000/udp"},
		{both(53, 53), "53"},
		{both(1, 65535), "1:65535"},
		{udp(65535, 65535), "65535/udp"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

// Port.String output is what the parser reads back.
func TestPortStringRoundTrip(t *testing.T) {
	for _, p := range []Port{tcp(22, 22), udp(60000, 61000), both(53, 53), tcp(1, 65535)} {
		got, msg := parsePorts(p.String())
		if msg != "" || len(got) != 1 || got[0] != p {
			t.Errorf("parsePorts(%q) = %v, %q; want [%v]", p.String(), got, msg, p)
		}
	}
}
