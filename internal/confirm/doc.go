// Package confirm applies rulesets with commit-confirm: unless confirmed in time, a detached timer puts the previous ruleset back.
package confirm
