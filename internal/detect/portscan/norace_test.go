//go:build !race

package portscan

const raceEnabled = false
