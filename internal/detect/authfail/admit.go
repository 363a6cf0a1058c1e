package authfail

import (
	"hash/maphash"
	"net/netip"
)

// admission decides which new sources may enter a full jail table. When a
// flood of one-off sources (100,000 addresses failing once each) fills the
// table, plain LRU would evict a slow attacker's count before its next
// failure and it would never be banned. Instead a new source is admitted
// only when a count-min sketch has seen it fail before; one-off sources
// churn the sketch, not the table. The sketch is fixed-size (4 rows of
// 2^20 one-byte counters, 4 MiB, allocated when the table first fills)
// and halves every counter after width/2 additions, so old failures fade.
type admission struct {
	rows  [4][]uint8
	seeds [4]maphash.Seed
	adds  int
}

const admitBits = 20

func newAdmission() *admission {
	a := &admission{}
	for i := range a.rows {
		a.rows[i] = make([]uint8, 1<<admitBits)
		a.seeds[i] = maphash.MakeSeed()
	}
	return a
}

// add counts a failure of k and returns the estimate of k's failures
// (never below the truth, since the last halving).
func (a *admission) add(k netip.Prefix) uint8 {
	est := uint8(255)
	for i := range a.rows {
		h := maphash.Comparable(a.seeds[i], k) & (1<<admitBits - 1)
		if c := a.rows[i][h]; c < 255 {
			a.rows[i][h] = c + 1
		}
		est = min(est, a.rows[i][h])
	}
	if a.adds++; a.adds >= 1<<(admitBits-1) {
		a.adds = 0
		for i := range a.rows {
			for j, c := range a.rows[i] {
				a.rows[i][j] = c >> 1
			}
		}
	}
	return est
}
