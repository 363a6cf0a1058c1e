// Package policy holds moat's firewall policy as validated values: defaults, named networks, guards, logging and ordered rules.
package policy
