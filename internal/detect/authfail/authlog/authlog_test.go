package authlog

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestGenerateDeterministic(t *testing.T) {
	var a, b, c bytes.Buffer
	ta, err := Generate(&a, Config{Seed: 7, Lines: 20000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(&b, Config{Seed: 7, Lines: 20000}); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(&c, Config{Seed: 8, Lines: 20000}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("the same seed gave different logs")
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Error("different seeds gave the same log")
	}
	if n := strings.Count(a.String(), "\n"); n != 20000 || ta.Lines != 20000 {
		t.Errorf("%d lines written, truth says %d", n, ta.Lines)
	}
	if len(ta.Ban) == 0 || len(ta.Never) == 0 {
		t.Fatalf("degenerate truth: %+v", ta)
	}
	for _, n := range ta.Never {
		if slices.Contains(ta.Ban, n) {
			t.Errorf("%s is both to ban and never to ban", n)
		}
	}
	for _, want := range []string{"192.0.2.66/32", "2001:db8:66::/64", "203.0.113.10/32"} {
		if !slices.Contains(ta.Never, want) {
			t.Errorf("victim %s missing from never", want)
		}
	}
	if !strings.Contains(a.String(), "Invalid user Failed password for root from 192.0.2.66 port 22 ssh2 from ") &&
		!strings.Contains(a.String(), "Invalid user from 192.0.2.") {
		t.Error("no injection attempt in the log")
	}
}

func TestGenerateErrors(t *testing.T) {
	if _, err := Generate(&bytes.Buffer{}, Config{Lines: 0}); err == nil {
		t.Error("zero lines accepted")
	}
}
