package decide

import "time"

// lru is a map bounded to max entries; putting one more drops the least
// recently used.
type lru[K comparable, V any] struct {
	max     int
	onEvict func(K) // called for every entry that leaves, evicted or removed
	m       map[K]*node[K, V]
	root    node[K, V] // sentinel: root.next is the most recent, root.prev the least
}

type node[K comparable, V any] struct {
	prev, next *node[K, V]
	key        K
	val        V
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	c := &lru[K, V]{max: max, m: make(map[K]*node[K, V])}
	c.root.next, c.root.prev = &c.root, &c.root
	return c
}

func (c *lru[K, V]) len() int { return len(c.m) }

func (c *lru[K, V]) unlink(n *node[K, V]) {
	n.prev.next, n.next.prev = n.next, n.prev
}

func (c *lru[K, V]) pushFront(n *node[K, V]) {
	n.prev, n.next = &c.root, c.root.next
	n.prev.next, n.next.prev = n, n
}

// get returns the value for k and marks it used.
func (c *lru[K, V]) get(k K) (V, bool) {
	n, ok := c.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.unlink(n)
	c.pushFront(n)
	return n.val, true
}

// peek returns the value for k without marking it used.
func (c *lru[K, V]) peek(k K) (V, bool) {
	if n, ok := c.m[k]; ok {
		return n.val, true
	}
	var zero V
	return zero, false
}

// put stores v for k; it reports whether k is new.
func (c *lru[K, V]) put(k K, v V) bool {
	if n, ok := c.m[k]; ok {
		n.val = v
		c.unlink(n)
		c.pushFront(n)
		return false
	}
	var n *node[K, V]
	if len(c.m) >= c.max {
		n = c.root.prev // reuse the evicted node
		c.unlink(n)
		delete(c.m, n.key)
		c.left(n.key)
	} else {
		n = new(node[K, V])
	}
	n.key, n.val = k, v
	c.m[k] = n
	c.pushFront(n)
	return true
}

func (c *lru[K, V]) remove(k K) {
	if n, ok := c.m[k]; ok {
		c.unlink(n)
		delete(c.m, k)
		c.left(k)
	}
}

func (c *lru[K, V]) left(k K) {
	if c.onEvict != nil {
		c.onEvict(k)
	}
}

// removeFunc drops every entry for which drop is true.
func (c *lru[K, V]) removeFunc(drop func(K, V) bool) {
	for n := c.root.next; n != &c.root; {
		next := n.next
		if drop(n.key, n.val) {
			c.unlink(n)
			delete(c.m, n.key)
			c.left(n.key)
		}
		n = next
	}
}

// window admits at most max events in any minute: it keeps the times of the
// last max admitted events, in order (now never goes back).
type window struct {
	max   int
	times []time.Time // ring, once full; times[next] is the oldest
	next  int
}

func (w *window) take(now time.Time) bool {
	if w.max <= 0 {
		return false
	}
	if len(w.times) < w.max {
		w.times = append(w.times, now)
		return true
	}
	if now.Sub(w.times[w.next]) < time.Minute {
		return false
	}
	w.times[w.next] = now
	w.next = (w.next + 1) % w.max
	return true
}
