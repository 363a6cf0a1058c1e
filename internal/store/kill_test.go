package store

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestKillDuringBatch is E1 for the store: a daemon killed with SIGKILL
// while recording batches of 10,000 bans leaves a database that opens
// cleanly and holds whole batches only, each with its history.
func TestKillDuringBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	path := filepath.Join(t.TempDir(), "moat.db")
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$")
		cmd.Env = append(os.Environ(), "MOAT_STORE_KILL_HELPER="+path, "MOAT_STORE_KILL_ROUND="+strconv.Itoa(round))
		cmd.Stderr = os.Stderr
		must(t, cmd.Start())
		time.Sleep(time.Duration(150+rand.IntN(1000)) * time.Millisecond)
		must(t, cmd.Process.Kill())
		cmd.Wait()

		s, err := Open(Options{Path: path, Now: newClock(t0).Now, Logf: t.Logf})
		if err != nil {
			t.Fatalf("round %d: Open after kill: %v", round, err)
		}
		if rec, why := s.Recovered(); rec {
			t.Fatalf("round %d: database needed recovery after kill: %s", round, why)
		}
		bans, err := s.ActiveBans(t0)
		must(t, err)
		var hist int
		must(t, s.r.QueryRow(`SELECT count(*) FROM history`).Scan(&hist))
		must(t, s.Close())
		t.Logf("round %d: %d bans, %d history records", round, len(bans), hist)
		if len(bans)%benchBatch != 0 || hist != len(bans) {
			t.Fatalf("round %d: %d bans and %d history records: a batch was cut", round, len(bans), hist)
		}
	}
}

// TestKillHelper is the process TestKillDuringBatch kills.
func TestKillHelper(t *testing.T) {
	path := os.Getenv("MOAT_STORE_KILL_HELPER")
	if path == "" {
		t.Skip("helper process for TestKillDuringBatch")
	}
	round, _ := strconv.Atoi(os.Getenv("MOAT_STORE_KILL_ROUND"))
	s, err := Open(Options{Path: path, Now: newClock(t0).Now})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		// Distinct prefixes per round and batch: every batch adds rows.
		if err := s.AddBans(decisions((round*1000+i)*benchBatch, benchBatch)); err != nil {
			t.Fatal(err)
		}
	}
}
