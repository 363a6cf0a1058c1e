// Package firewall compiles a moat policy into the nftables table that enforces it.
package firewall
