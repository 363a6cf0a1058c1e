// Package api is the moat daemon's local JSON API on a unix socket, and the client the CLI uses.
package api
