// Package arch holds tests of the code base's shape: import rules between
// the data plane and the control plane, and package documentation.
package arch
