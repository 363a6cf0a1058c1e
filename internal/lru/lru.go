package lru

// Map is a bounded map that evicts the least recently used entry. Entries
// live in a slice that grows up to the bound, so a steady state does not
// allocate.
type Map[K comparable, V any] struct {
	max   int
	index map[K]int32
	nodes []lruNode[K, V]
	head  int32 // most recent; -1 when empty
	tail  int32 // least recent
	free  int32 // free list through next; -1 when empty
}

type lruNode[K comparable, V any] struct {
	key        K
	val        V
	prev, next int32
}

func New[K comparable, V any](max int) *Map[K, V] {
	if max < 1 {
		max = 1
	}
	return &Map[K, V]{max: max, index: make(map[K]int32), head: -1, tail: -1, free: -1}
}

func (l *Map[K, V]) Len() int { return len(l.index) }

// Cap is the most entries the map holds.
func (l *Map[K, V]) Cap() int { return l.max }

// Get returns the entry for k, marking it most recent.
func (l *Map[K, V]) Get(k K) (*V, bool) {
	i, ok := l.index[k]
	if !ok {
		return nil, false
	}
	l.touch(i)
	return &l.nodes[i].val, true
}

// Put returns the entry for k, adding a zero one (and evicting the least
// recent entry when full) if needed. evicted reports an eviction.
func (l *Map[K, V]) Put(k K) (v *V, added, evicted bool) {
	if i, ok := l.index[k]; ok {
		l.touch(i)
		return &l.nodes[i].val, false, false
	}
	var i int32
	switch {
	case l.free >= 0:
		i = l.free
		l.free = l.nodes[i].next
	case len(l.nodes) < l.max:
		l.nodes = append(l.nodes, lruNode[K, V]{})
		i = int32(len(l.nodes) - 1)
	default:
		i = l.tail
		l.unlink(i)
		delete(l.index, l.nodes[i].key)
		evicted = true
	}
	var zero V
	l.nodes[i] = lruNode[K, V]{key: k, val: zero, prev: -1, next: -1}
	l.index[k] = i
	l.pushFront(i)
	return &l.nodes[i].val, true, evicted
}

// Remove deletes the entry for k, if any.
func (l *Map[K, V]) Remove(k K) {
	i, ok := l.index[k]
	if !ok {
		return
	}
	l.unlink(i)
	delete(l.index, k)
	var zero V
	l.nodes[i].val = zero
	l.nodes[i].next = l.free
	l.free = i
}

// Oldest returns the least recently used entry.
func (l *Map[K, V]) Oldest() (K, *V, bool) {
	if l.tail < 0 {
		var zero K
		return zero, nil, false
	}
	return l.nodes[l.tail].key, &l.nodes[l.tail].val, true
}

func (l *Map[K, V]) touch(i int32) {
	if l.head == i {
		return
	}
	l.unlink(i)
	l.pushFront(i)
}

func (l *Map[K, V]) unlink(i int32) {
	n := &l.nodes[i]
	if n.prev >= 0 {
		l.nodes[n.prev].next = n.next
	} else {
		l.head = n.next
	}
	if n.next >= 0 {
		l.nodes[n.next].prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.prev, n.next = -1, -1
}

func (l *Map[K, V]) pushFront(i int32) {
	n := &l.nodes[i]
	n.prev = -1
	n.next = l.head
	if l.head >= 0 {
		l.nodes[l.head].prev = i
	}
	l.head = i
	if l.tail < 0 {
		l.tail = i
	}
}

// Each calls fn for every entry, most recent first.
func (l *Map[K, V]) Each(fn func(K, *V)) {
	for i := l.head; i >= 0; i = l.nodes[i].next {
		fn(l.nodes[i].key, &l.nodes[i].val)
	}
}
