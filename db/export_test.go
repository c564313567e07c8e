package db

import "testing"

// closeWithoutFlush closes the store the way a crash would leave it: the
// heads are not flushed, so their spans live only in the WAL.
func (db *DB) closeWithoutFlush(t testing.TB) {
	t.Helper()
	db.mu.Lock()
	db.mu.closed = true
	db.mu.Unlock()
	close(db.stop)
	<-db.loopDone
	if err := db.closeResources(); err != nil {
		t.Fatal(err)
	}
}
