package plugins

import (
	"io/fs"
	"syscall"
	"time"
)

// accessTime is fi's last access time (zero if unknown). With the usual
// relatime mount option it is updated at least once a day on reads.
func accessTime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Atim.Sec, st.Atim.Nsec)
	}
	return time.Time{}
}
