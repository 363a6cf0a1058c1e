package logtail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/moat-sec/moat/internal/event"
)

type scanned struct {
	line string
	cut  bool
}

func (s scanned) String() string { return fmt.Sprintf("%q/%v", s.line, s.cut) }

// naive is the reference splitter: whole input in memory.
func naive(in []byte, maxLine int) []scanned {
	var out []scanned
	for len(in) > 0 {
		i := bytes.IndexByte(in, '\n')
		var line []byte
		if i < 0 {
			line, in = in, nil
		} else {
			line, in = in[:i], in[i+1:]
		}
		cut := len(line) > maxLine
		if cut {
			line = line[:maxLine]
		}
		out = append(out, scanned{string(line), cut})
	}
	return out
}

func scanAll(t testing.TB, r io.Reader, maxLine int) []scanned {
	var out []scanned
	err := Scan(r, maxLine, func(line []byte, cut bool) error {
		out = append(out, scanned{string(line), cut})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestScan(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want []scanned
	}{
		{"empty", "", 10, nil},
		{"one", "a\n", 10, []scanned{{"a", false}}},
		{"no final newline", "a\nb", 10, []scanned{{"a", false}, {"b", false}}},
		{"empty lines", "\n\n", 10, []scanned{{"", false}, {"", false}}},
		{"exactly max", "0123456789\nx\n", 10, []scanned{{"0123456789", false}, {"x", false}}},
		{"max plus one", "0123456789A\nx\n", 10, []scanned{{"0123456789", true}, {"x", false}}},
		{"long, unterminated", "0123456789ABC", 10, []scanned{{"0123456789", true}}},
		// A8: one record per physical line; a literal backslash-n is not a
		// separator; NUL, CR, escapes, invalid UTF-8 and bidi overrides stay.
		{"hostile bytes", "user a\\nb\x00c\r\x1b[2J\xff\xfe\u202e\r\nz\n", 100,
			[]scanned{{"user a\\nb\x00c\r\x1b[2J\xff\xfe\u202e\r", false}, {"z", false}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range map[string]io.Reader{
				"whole":    strings.NewReader(tc.in),
				"byte":     iotest.OneByteReader(strings.NewReader(tc.in)),
				"half":     iotest.HalfReader(strings.NewReader(tc.in)),
				"data+EOF": iotest.DataErrReader(strings.NewReader(tc.in)),
			} {
				got := scanAll(t, r, tc.max)
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Errorf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestScanErrors(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := Scan(strings.NewReader("a\nb\nc\n"), 0, func([]byte, bool) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Errorf("err %v after %d lines, want stop after 2", err, n)
	}
	bad := errors.New("disk on fire")
	err = Scan(iotest.ErrReader(bad), 0, func([]byte, bool) error { return nil })
	if !errors.Is(err, bad) {
		t.Errorf("err %v, want the reader's", err)
	}
	if err := Scan(strings.NewReader(""), -1, nil); err == nil {
		t.Error("negative maxLine accepted")
	}
}

func FuzzScan(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), 2, 3)
	f.Add([]byte(strings.Repeat("x", 100)+"\n"), 7, 1)
	f.Fuzz(func(t *testing.T, in []byte, maxLine, chunk int) {
		maxLine = 1 + abs(maxLine)%64
		chunk = 1 + abs(chunk)%32
		got := scanAll(t, &chunkReader{in, chunk}, maxLine)
		want := naive(in, maxLine)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("max %d chunk %d: got %v, want %v", maxLine, chunk, got, want)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[n:]
	return n, nil
}

func TestReadAll(t *testing.T) {
	out := make(chan event.Observation, 10)
	before := time.Now()
	err := ReadAll(context.Background(), strings.NewReader("one\ntwo is long\nthree"), "file:/x", 6, out)
	if err != nil {
		t.Fatal(err)
	}
	close(out)
	var got []event.Observation
	for o := range out {
		got = append(got, o)
	}
	want := []event.Observation{{Line: "one"}, {Line: "two is", Truncated: true}, {Line: "three"}}
	if len(got) != len(want) {
		t.Fatalf("got %d observations, want %d", len(got), len(want))
	}
	for i, o := range got {
		if o.Line != want[i].Line || o.Truncated != want[i].Truncated || o.Source != "file:/x" || o.Trusted || o.Time.Before(before) {
			t.Errorf("observation %d = %+v", i, o)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = ReadAll(ctx, strings.NewReader("a\nb\n"), "file:/x", 0, make(chan event.Observation))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ReadAll: %v", err)
	}
}

// genLines is n lines of about 100 bytes each.
func genLines(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "Nov 21 11:39:%02d host sshd[%d]: Failed password for invalid user admin from 203.0.113.%d port %d ssh2\n",
			i%60, 1000+i%9000, i%256, 1024+i%60000)
	}
	return b.Bytes()
}

func BenchmarkScan(b *testing.B) {
	const n = 1_000_000
	data := genLines(n)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		lines := 0
		if err := Scan(bytes.NewReader(data), 0, func([]byte, bool) error { lines++; return nil }); err != nil {
			b.Fatal(err)
		}
		if lines != n {
			b.Fatalf("%d lines", lines)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

func BenchmarkReadAll(b *testing.B) {
	const n = 1_000_000
	data := genLines(n)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		out := make(chan event.Observation, 4096)
		got := make(chan int)
		go func() {
			lines := 0
			for range out {
				lines++
			}
			got <- lines
		}()
		if err := ReadAll(context.Background(), bytes.NewReader(data), "file:/bench", 0, out); err != nil {
			b.Fatal(err)
		}
		close(out)
		if lines := <-got; lines != n {
			b.Fatalf("%d lines", lines)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}
