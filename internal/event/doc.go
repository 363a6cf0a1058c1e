// Package event holds the values that flow between moat's stages: observations from sensors, findings from detectors, decisions for the enforcer.
package event
