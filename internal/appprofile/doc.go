// Package appprofile is the catalogue of named services (application profiles) that rules can allow by name.
package appprofile
