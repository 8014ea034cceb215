// Package api implements openvpc's management API: each handler validates
// its request, runs one store transaction, and turns errors into wire codes.
package api
