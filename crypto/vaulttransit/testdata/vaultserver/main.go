// Command vaultserver is HashiCorp Vault's own CLI (`vault server -dev …`),
// built from its Go module so the Transit integration tests run against a
// real Vault server. It is a separate module, so the product's dependency
// graph stays light; `go test ./...` of the main module does not see it
// (it lives under testdata). Vault ≥ 1.15 is BUSL-1.1: fine for tests; the
// product links only the MPL-2.0 api module.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
