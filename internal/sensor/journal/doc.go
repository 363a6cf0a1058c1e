// Package journal follows systemd's journal through journalctl, with journald's trusted fields.
package journal
