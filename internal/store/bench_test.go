package store

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/moat-sec/moat/internal/event"
)

const benchBatch = 10000

// decisions returns n distinct ban decisions starting at address index
// base, alternating IPv4 and IPv6, with realistic evidence.
func decisions(base, n int) []event.Decision {
	ds := make([]event.Decision, n)
	for i := range ds {
		k := uint32(base + i)
		var a netip.Addr
		if k%2 == 0 {
			a = netip.AddrFrom4([4]byte{10, byte(k >> 16), byte(k >> 8), byte(k)})
		} else {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(k >> 24), 13: byte(k >> 16), 14: byte(k >> 8), 15: byte(k)})
		}
		ds[i] = event.Decision{
			Op: event.Ban, Prefix: netip.PrefixFrom(a, a.BitLen()), Duration: time.Hour, Time: t0, Expires: t0.Add(time.Hour),
			Jail: "sshd", Detector: "jail", Reason: "5 failures in 10m0s", Offence: 1,
			Evidence: []string{
				"Nov 21 12:00:01 host sshd[1234]: Failed password for invalid user admin from " + a.String() + " port 51234 ssh2",
				"Nov 21 12:00:03 host sshd[1234]: Failed password for invalid user admin from " + a.String() + " port 51236 ssh2",
			},
		}
	}
	return ds
}

// BenchmarkAddBans records batches of 10,000 new bans, as the enforcer
// does after a flood, and reports bans/s.
func BenchmarkAddBans(b *testing.B) {
	s, err := Open(Options{Path: filepath.Join(b.TempDir(), "moat.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	batches := make([][]event.Decision, 0, 64)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		if i >= len(batches) {
			batches = append(batches, decisions(i*benchBatch, benchBatch))
		}
		ds := batches[i]
		b.StartTimer()
		if err := s.AddBans(ds); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "bans/s")
}

// BenchmarkAddBansExtend re-bans the same 10,000 prefixes: every row is an
// update on conflict.
func BenchmarkAddBansExtend(b *testing.B) {
	s, err := Open(Options{Path: filepath.Join(b.TempDir(), "moat.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ds := decisions(0, benchBatch)
	if err := s.AddBans(ds); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := s.AddBans(ds); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "bans/s")
}
