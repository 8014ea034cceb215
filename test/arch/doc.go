// Package arch holds tests of the code base's shape: a table of imports
// each package must never make, directly or through others (DESIGN.md §8),
// and package documentation.
package arch
