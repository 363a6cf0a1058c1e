// Package store records bans, their history and the daemon's read positions in SQLite, and survives a corrupt database.
package store
