// Package daemon wires moat's stages into the running daemon: sources, jails, decisions, the kernel, the store and the API. Only cmd/moat (through the CLI) imports it.
package daemon
