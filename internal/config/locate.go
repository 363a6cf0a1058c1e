package config

import (
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// locator maps key paths ("defaults.incoming", "rule.2.from",
// "networks.admins.1") to where their values are written, so that semantic
// errors found after decoding still name a line and column.
type locator struct {
	lines  []int // byte offset where each line starts
	pos    map[string]span
	kinds  map[string]unstable.Kind
	tables map[string]span // table headers, e.g. "defaults"
}

// span is a value's position: 1-based line and column, and byte range.
type span struct {
	Line, Col  int
	Start, End int // byte offsets of the value in the document
}

func newLocator(data []byte) *locator {
	l := &locator{pos: map[string]span{}, kinds: map[string]unstable.Kind{}, tables: map[string]span{}, lines: []int{0}}
	for i, c := range data {
		if c == '\n' {
			l.lines = append(l.lines, i+1)
		}
	}
	p := unstable.Parser{KeepComments: false}
	p.Reset(data)
	var prefix []string
	arrayIdx := map[string]int{}
	for p.NextExpression() {
		n := p.Expression()
		switch n.Kind {
		case unstable.Table, unstable.ArrayTable:
			prefix = keyParts(n.Key())
			name := strings.Join(prefix, ".")
			if n.Kind == unstable.ArrayTable {
				arrayIdx[name]++
				prefix = append(prefix, strconv.Itoa(arrayIdx[name]))
			}
			it := n.Key()
			it.Next()
			l.tables[strings.Join(prefix, ".")] = l.span(&p, it.Node())
		case unstable.KeyValue:
			key := append(append([]string{}, prefix...), keyParts(n.Key())...)
			l.record(&p, strings.Join(key, "."), n.Value())
		}
	}
	return l
}

func (l *locator) record(p *unstable.Parser, path string, v *unstable.Node) {
	l.pos[path] = l.span(p, v)
	l.kinds[path] = v.Kind
	switch v.Kind {
	case unstable.Array:
		it := v.Children()
		for i := 1; it.Next(); i++ {
			l.record(p, path+"."+strconv.Itoa(i), it.Node())
		}
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			kv := it.Node()
			l.record(p, path+"."+strings.Join(keyParts(kv.Key()), "."), kv.Value())
		}
	}
}

func (l *locator) span(p *unstable.Parser, n *unstable.Node) span {
	if n == nil || !n.Valid() {
		return span{}
	}
	r := n.Raw
	if r.Length == 0 {
		// Arrays carry no range of their own: point at the first element.
		if c := n.Child(); c != nil && c.Valid() {
			return l.span(p, c)
		}
		return span{}
	}
	// Parser.Shape counts lines from the start of the file on every call,
	// which is quadratic over a policy of many rules; look the offset up
	// in the line index instead.
	start := int(r.Offset)
	line := sort.SearchInts(l.lines, start+1) // lines starting at or before start
	return span{Line: line, Col: start - l.lines[line-1] + 1, Start: start, End: start + int(r.Length)}
}

// at returns the position of path, or of its nearest written ancestor.
func (l *locator) at(path string) span {
	for p := path; p != ""; {
		if s, ok := l.pos[p]; ok {
			return s
		}
		if s, ok := l.tables[p]; ok {
			return s
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return span{}
}

func keyParts(it unstable.Iterator) []string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}
