//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
)

func ownedByCurrentUser(fi os.FileInfo, path string) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("cannot read the owner of %s", path)
	}
	uid, gid := os.Getuid(), os.Getgid()
	if int(st.Uid) != uid || int(st.Gid) != gid {
		return fmt.Errorf("%s belongs to %d:%d, but only files of the current user and group %d:%d are accepted", path, st.Uid, st.Gid, uid, gid)
	}
	return nil
}
