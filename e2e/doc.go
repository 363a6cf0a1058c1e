// Package e2e proves moat end to end: the real binary, the real kernel, real daemons and attack tools, all inside network namespaces the tests create.
package e2e
