// Package mapping is the Mapping Service: it follows the store with one
// watch, keeps each host's scope, streams every host a snapshot then
// ordered deltas of exactly its scope, and tracks acknowledgements so an
// instance turns running only once every host in scope can reach it.
package mapping
