// Package enforce writes ban decisions into the kernel's ban sets, in batches, and keeps them there.
package enforce
