// Package config reads moat's policy files (the hand-written moat.toml and the CLI-managed rules file) strictly, with file:line:col on every error.
package config
