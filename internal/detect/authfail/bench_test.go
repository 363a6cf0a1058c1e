package authfail

import (
	"testing"
	"unsafe"
)

// benchLines is a 200,000-line synthetic auth.log (see package authlog),
// generated once.
func benchLines(b *testing.B) ([]string, [][]byte) {
	benchLogOnce.Do(func() {
		benchLog, benchTruth = genLog(b, 200000, 42)
	})
	bs := make([][]byte, len(benchLog))
	for i, l := range benchLog {
		bs[i] = unsafe.Slice(unsafe.StringData(l), len(l))
	}
	return benchLog, bs
}

// BenchmarkSSHDFilter measures the sshd filter (normal mode) over a
// realistic auth.log, following connections as a jail does. The goal is
// at least 1,000,000 lines/s on one core.
func BenchmarkSSHDFilter(b *testing.B) {
	_, lines := benchLines(b)
	f, err := Builtin("sshd", "normal")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("session", func(b *testing.B) {
		s := f.NewSession(0)
		b.ReportAllocs()
		b.ResetTimer()
		n := 0
		for b.Loop() {
			s.MatchBytes(lines[n%len(lines)])
			n++
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
	})
	b.Run("single-line", func(b *testing.B) {
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			f.MatchBytes(lines[n%len(lines)])
			n++
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
	})
	b.Run("regexp-only", func(b *testing.B) {
		// the same rules with the fast paths turned off, for comparison
		slow := withoutFastPaths(f)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			slow.MatchBytes(lines[n%len(lines)])
			n++
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
	})
}

// BenchmarkJail measures a jail (sshd filter, normal mode) observing a
// realistic auth.log.
func BenchmarkJail(b *testing.B) {
	lines, _ := benchLines(b)
	obs := observations(b, lines, benchTruth.End)
	b.ReportAllocs()
	b.ResetTimer()
	var j *Jail
	n := 0
	for b.Loop() {
		if n%len(obs) == 0 {
			// a fresh jail per pass, so the log's times move forward
			b.StopTimer()
			var err error
			j, err = NewJail(JailConfig{Name: "sshd", Filter: "sshd"}, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		j.Observe(obs[n%len(obs)])
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "lines/s")
}

// withoutFastPaths copies f with its rules' fast paths removed.
func withoutFastPaths(f *Filter) *Filter {
	g := *f
	g.rules = make([]*rule, len(f.rules))
	for i, r := range f.rules {
		c := *r
		c.fast = nil
		g.rules[i] = &c
	}
	return &g
}
