//go:build !unix

package main

import (
	"fmt"
	"os"
)

func ownedByCurrentUser(_ os.FileInfo, path string) error {
	return fmt.Errorf("cannot check the owner of %s on this platform; the stand-in agent is for Linux nodes", path)
}
