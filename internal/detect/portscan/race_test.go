//go:build race

package portscan

const raceEnabled = true
