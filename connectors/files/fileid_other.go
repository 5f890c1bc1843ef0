//go:build !unix

package files

import "os"

// fileID is unknown here; the cursor's size and hash guards remain.
func fileID(os.FileInfo) uint64 { return 0 }
