// Package logtail follows log files through every kind of rotation, resuming where it stopped.
package logtail
