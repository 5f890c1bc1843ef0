//go:build unix

package files

import (
	"os"
	"syscall"
)

// fileID is the file's inode: a path whose inode changed names another file.
func fileID(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}
