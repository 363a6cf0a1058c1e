// Package nft is moat's only door to the kernel's nftables: a small ruleset model that renders as nft text and is applied over netlink in one transaction.
package nft
