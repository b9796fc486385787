// The Go client of llmconfig: `go get github.com/stigmer/llmconfig/go` (tags go/vX.Y.Z).
//
// The versions below are floors, set to what Stigmer's daemon already builds with, so adding
// this module moves none of its dependencies. CI builds and tests the same code offline with
// Debian 12's Go 1.19 and Debian's grpc-go, protobuf-go and genproto, in GOPATH mode (see
// `make go-test`), which ignores this file; go.sum is left to the first online `go mod tidy`.
module github.com/stigmer/llmconfig/go

go 1.24.0

require (
	google.golang.org/genproto/googleapis/rpc v0.0.0-20251029180050-ab9386a59fda
	google.golang.org/grpc v1.78.0
	google.golang.org/protobuf v1.36.11
)
