// Package store is openvpc's source of truth: the etcd key schema, one
// transaction per mutation, watches, and the embedded etcd. It is the only
// package that imports etcd.
package store
