// Command kubectl stands in for the kubectl of the Rancher image in tests of rancher.Run: it
// answers the readiness check, exiting with $AGENTTLS_KUBECTL_EXIT (default 0).
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	code, _ := strconv.Atoi(os.Getenv("AGENTTLS_KUBECTL_EXIT"))
	fmt.Println("stand-in kubectl", os.Args[1:], "exit", code)
	os.Exit(code)
}
