package confirm

import (
	"errors"
	"testing"
	"time"

	"github.com/moat-sec/moat/internal/nft"
)

type fakeApplier struct {
	replaced []*nft.Table
	deleted  []string
	err      error
}

func (f *fakeApplier) Replace(t *nft.Table) error {
	if f.err != nil {
		return f.err
	}
	f.replaced = append(f.replaced, t)
	return nil
}

func (f *fakeApplier) Delete(name string) error {
	f.deleted = append(f.deleted, name)
	return nil
}

func table(name, comment string) *nft.Table {
	return &nft.Table{Name: name, Chains: []*nft.Chain{{Name: "input", Hook: nft.HookInput, Rules: []*nft.Rule{{Exprs: []nft.Expr{&nft.Counter{}, &nft.Verdict{Kind: nft.VerdictAccept}}, Comment: comment}}}}}
}

func newStore(t *testing.T, now time.Time) *Store {
	return &Store{StateDir: t.TempDir(), RunDir: t.TempDir(), Now: func() time.Time { return now }}
}

// begin starts a pending apply whose "timer" is a process that exits at once.
func begin(t *testing.T, s *Store, prev, next *nft.Table, wait time.Duration) *Pending {
	t.Helper()
	p, err := s.Begin(prev, next, wait, "/bin/sh", []string{"-c", "exit 0"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTimerRollsBackUnconfirmed(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	s := newStore(t, now)
	prev, next := table("moat", "old"), table("moat", "new")
	p := begin(t, s, prev, next, 2*time.Minute)
	var slept time.Duration
	a := &fakeApplier{}
	rolled, err := s.RunTimer(p.Token, a, func(d time.Duration) bool { slept = d; return true })
	if err != nil || !rolled {
		t.Fatalf("RunTimer = %v, %v", rolled, err)
	}
	if slept != 2*time.Minute {
		t.Errorf("slept %v, want until the deadline", slept)
	}
	if len(a.replaced) != 1 || a.replaced[0].Chains[0].Rules[0].Comment != "old" {
		t.Errorf("replaced %v, want the previous table", a.replaced)
	}
	if pend, _ := s.Pending(); pend != nil {
		t.Error("pending apply left behind")
	}
	if _, err := s.Confirm(); !errors.Is(err, ErrNothingPending) {
		t.Errorf("confirm after rollback: %v", err)
	}
}

func TestTimerRemovesTableWhenNoneBefore(t *testing.T) {
	s := newStore(t, time.Now())
	p := begin(t, s, nil, table("moat", "new"), time.Second)
	a := &fakeApplier{}
	if rolled, err := s.RunTimer(p.Token, a, func(time.Duration) bool { return true }); !rolled || err != nil {
		t.Fatalf("RunTimer = %v, %v", rolled, err)
	}
	if len(a.deleted) != 1 || a.deleted[0] != "moat" || len(a.replaced) != 0 {
		t.Errorf("deleted %v replaced %v", a.deleted, a.replaced)
	}
}

func TestConfirmedIsKept(t *testing.T) {
	s := newStore(t, time.Now())
	next := table("moat", "new")
	p := begin(t, s, table("moat", "old"), next, time.Minute)
	if _, err := s.Confirm(); err != nil {
		t.Fatal(err)
	}
	a := &fakeApplier{}
	if rolled, err := s.RunTimer(p.Token, a, func(time.Duration) bool { return true }); rolled || err != nil {
		t.Fatalf("timer after confirm: rolled=%v err=%v", rolled, err)
	}
	if len(a.replaced)+len(a.deleted) != 0 {
		t.Error("the timer touched the kernel after confirm")
	}
	got, err := s.Applied()
	if err != nil || got == nil || got.Chains[0].Rules[0].Comment != "new" {
		t.Errorf("applied = %v, %v; want the confirmed table", got, err)
	}
}

// TestSupersededKeepsFirstPrev: two unconfirmed applies in a row roll back
// to what was confirmed before both, and only the newest timer acts.
func TestSupersededKeepsFirstPrev(t *testing.T) {
	s := newStore(t, time.Now())
	first := begin(t, s, table("moat", "confirmed"), table("moat", "try1"), time.Minute)
	second := begin(t, s, table("moat", "try1"), table("moat", "try2"), time.Minute)
	a := &fakeApplier{}
	if rolled, _ := s.RunTimer(first.Token, a, func(time.Duration) bool { return true }); rolled {
		t.Error("the superseded timer rolled back")
	}
	if rolled, err := s.RunTimer(second.Token, a, func(time.Duration) bool { return true }); !rolled || err != nil {
		t.Fatalf("RunTimer = %v, %v", rolled, err)
	}
	if len(a.replaced) != 1 || a.replaced[0].Chains[0].Rules[0].Comment != "confirmed" {
		t.Errorf("rolled back to %v, want the last confirmed table", a.replaced)
	}
}

func TestInterruptedTimerDoesNothing(t *testing.T) {
	s := newStore(t, time.Now())
	p := begin(t, s, table("moat", "old"), table("moat", "new"), time.Minute)
	a := &fakeApplier{}
	if rolled, err := s.RunTimer(p.Token, a, func(time.Duration) bool { return false }); rolled || err != nil {
		t.Fatalf("interrupted timer: rolled=%v err=%v", rolled, err)
	}
	if pend, _ := s.Pending(); pend == nil {
		t.Error("an interrupted timer must leave the pending apply (boot restores the confirmed ruleset)")
	}
}

func TestCancel(t *testing.T) {
	s := newStore(t, time.Now())
	begin(t, s, nil, table("moat", "new"), time.Minute)
	if err := s.Cancel(); err != nil {
		t.Fatal(err)
	}
	if pend, _ := s.Pending(); pend != nil {
		t.Error("still pending after Cancel")
	}
	if err := s.SetApplied(nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Applied(); got != nil {
		t.Error("applied after SetApplied(nil)")
	}
}
