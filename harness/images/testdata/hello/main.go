// Command hello stands in for the harness's commands in the images tests.
package main

import (
	"fmt"
	"os"
)

func main() { fmt.Println("hello from", os.Args[0]) }
