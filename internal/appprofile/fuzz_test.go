package appprofile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// render writes profiles back in profile file syntax.
func render(ps []Profile) string {
	var b strings.Builder
	for _, p := range ps {
		ports := make([]string, len(p.Ports))
		for i, port := range p.Ports {
			ports[i] = port.String()
		}
		b.WriteString("[" + p.Name + "]\ntitle=" + p.Title + "\ndescription=" + p.Description +
			"\nports=" + strings.Join(ports, "|") + "\n\n")
	}
	return b.String()
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*")
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	for _, s := range []string{
		"",
		"[A]\nports=80,443/tcp|8000:8100/udp|53\n",
		"[A]\ntitle=t\n  more\ndescription: d\nports=1:65535/udp\n",
		"[A]\nports=0/tcp\n",
		"[A]\nports=6000:5000/tcp\n",
		"[A]\nports=6000:7000\n",
		"[A]\r\nPORTS = 22 / TCP\r\n",
		"\uFEFF; c\n# c\n[a.b_c-d+e f]\nports=1\n",
		"[A]\nports=1/tcp\n[a]\nports=2/tcp\n",
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := Parse("fuzz", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *ParseError", err, err)
			}
			if pe.Path != "fuzz" || pe.Line < 0 || pe.Line > strings.Count(string(data), "\n")+1 || pe.Msg == "" {
				t.Fatalf("bad error position: %+v", pe)
			}
			if ps != nil {
				t.Fatalf("profiles returned with an error")
			}
			return
		}
		names := map[string]bool{}
		for _, p := range ps {
			if msg := checkName(p.Name); msg != "" {
				t.Fatalf("accepted invalid name: %s", msg)
			}
			if names[asciiLower(p.Name)] {
				t.Fatalf("accepted duplicate name %q", p.Name)
			}
			names[asciiLower(p.Name)] = true
			if p.Title == "" || checkText(p.Title) != "" || checkText(p.Description) != "" {
				t.Fatalf("accepted bad title %q or description %q", p.Title, p.Description)
			}
			if len(p.Ports) == 0 {
				t.Fatalf("profile %q accepted without ports", p.Name)
			}
			for _, port := range p.Ports {
				if port.First < 1 || port.First > port.Last {
					t.Fatalf("profile %q: bad port %+v", p.Name, port)
				}
				if port.Proto != "tcp" && port.Proto != "udp" && port.Proto != "" {
					t.Fatalf("profile %q: bad protocol %+v", p.Name, port)
				}
				if port.Proto == "" && port.First != port.Last {
					t.Fatalf("profile %q: range without protocol %+v", p.Name, port)
				}
			}
		}

		// What was accepted renders to a file that parses to the same.
		again, err := Parse("fuzz", []byte(render(ps)))
		if err != nil {
			t.Fatalf("re-parsing rendered profiles: %v\n%s", err, render(ps))
		}
		strip := func(ps []Profile) []Profile {
			out := make([]Profile, len(ps))
			for i, p := range ps {
				p.Source = ""
				out[i] = p
			}
			return out
		}
		if diff := cmp.Diff(strip(ps), strip(again)); diff != "" {
			t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
		}
	})
}
