// The etcd of the tests' control plane (scripts/testenv). etcd's server module cannot be
// `go install`ed (its go.mod replaces sibling modules with ../ paths), so it is built from this
// module that requires it. A module of its own so that etcd's dependency versions cannot move
// kube-apiserver's.
// No Go file imports the binary's package, so `go mod tidy` would drop the require: after
// changing the version, refresh go.sum with
//   GOFLAGS=-mod=mod go list -deps go.etcd.io/etcd/server/v3 >/dev/null
module sendconnector-operator/testenv/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 v3.6.16
