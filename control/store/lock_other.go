//go:build !unix

package store

// dataDirLock is a no-op where flock does not exist.
type dataDirLock struct{}

func lockDataDir(string) (*dataDirLock, error) { return &dataDirLock{}, nil }

func (*dataDirLock) release() {}
