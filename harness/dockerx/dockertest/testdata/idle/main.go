// Command idle is a tiny static program for tests that need a container from a FROM scratch
// image: it prints its arguments and then waits for a signal.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	fmt.Println("idle", os.Args[1:])
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
