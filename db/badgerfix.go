package db

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// removeEmptyLogs deletes the empty value-log (.vlog) and memtable-log
// (.mem) files of the Badger store in dir before Badger opens it.
//
// Badger creates such a file and only then sizes it and writes its header;
// a process killed in between leaves a file of zero bytes, and Badger v4
// (4.9.6) then refuses to open the store ("Open existing file: …vlog:
// Create a new file", "while opening memtables … Create a new file"). Such
// a file holds no entry, so no key points into it and no write is lost by
// deleting it; Badger starts new files as it does on every open. The crash
// test (TestCrashRecovery) met both after a kill -9;
// TestEmptyBadgerLogsAfterCrash reproduces them.
//
// Files are removed only while this process holds the directory lock
// Badger itself takes (an exclusive flock of the directory), so the
// newly created file of a process that has the store open is never
// touched; when the lock is held elsewhere nothing is removed, and Badger's
// open then fails on the lock as it would have.
func removeEmptyLogs(dir string, log *slog.Logger) error {
	unlock, ok := lockDir(dir) // fails on a new store's missing directory too
	if !ok {
		return nil
	}
	defer unlock()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("open badger in %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".vlog") && !strings.HasSuffix(e.Name(), ".mem") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("open badger in %s: %w", dir, err)
		}
		if info.Size() != 0 {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("open badger in %s: remove the empty log file a crash left: %w", dir, err)
		}
		log.Warn("removed an empty Badger log file a crash left (Badger would refuse to open the store)", "file", path)
	}
	return nil
}
