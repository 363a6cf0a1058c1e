// Package lockout finds the SSH sessions an admin could lose and refuses policies that would cut them.
package lockout
