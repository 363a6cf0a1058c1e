// Package procnet reads the kernel's socket tables (/proc/net/tcp and tcp6) of the current network namespace.
package procnet
