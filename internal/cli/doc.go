// Package cli is moat's command line, in UFW's grammar: one file per noun, every command a thin layer over the internal packages.
package cli
