package lru

import "testing"

func TestLRU(t *testing.T) {
	l := New[int, int](3)
	for i := range 3 {
		v, added, _ := l.Put(i)
		*v = i * 10
		if !added {
			t.Fatal("not added")
		}
	}
	l.Get(0) // 1 is now the oldest
	if _, _, evicted := l.Put(3); !evicted {
		t.Fatal("no eviction")
	}
	if _, ok := l.Get(1); ok {
		t.Error("the least recent entry survived")
	}
	if v, ok := l.Get(0); !ok || *v != 0 {
		t.Error("a recent entry was evicted")
	}
	l.Remove(0)
	l.Remove(0)
	if k, _, ok := l.Oldest(); !ok || k != 2 {
		t.Errorf("oldest %d", k)
	}
	if _, added, evicted := l.Put(9); !added || evicted || l.Len() != 3 {
		t.Error("free slot not reused")
	}
}

func TestCap(t *testing.T) {
	if c := New[int, int](0).Cap(); c != 1 {
		t.Errorf("Cap of a zero bound = %d, want 1", c)
	}
}
