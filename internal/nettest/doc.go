// Package nettest builds throwaway network namespaces, veth links and processes for moat's kernel and end-to-end tests.
package nettest
