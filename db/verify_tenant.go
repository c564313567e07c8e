package db

import "context"

// VerifyTenant is Verify as one tenant sees it, for a caller that may
// learn nothing of the other tenants (tracedb serve's analytics API). It
// checks the store's records and the WAL, which every tenant shares, and
// tenant's blocks; it calls fn with tenant's problems and the store-wide
// ones (those with no Tenant: the format record, the WAL checkpoint, the
// WAL; and malformed keys under tenant's key prefix), never another
// tenant's.
//
// The report counts tenant's blocks, row groups, spans, postings lists and
// sections; Tenants is 1 when tenant has block keys, else 0. WALSegments
// counts the segments checked (the WAL is one for all tenants), and
// WALRecords tenant's records in them plus those that could not be
// decoded (which name no tenant, and are reported to every tenant).
// Problems and BenignProblems count what fn was given.
//
// A tenant name that ValidateTenant refuses is an error wrapping
// ErrInvalidTenant.
func (db *DB) VerifyTenant(ctx context.Context, tenant string, fn func(VerifyProblem)) (VerifyReport, error) {
	if err := ValidateTenant(tenant); err != nil {
		return VerifyReport{}, err
	}
	return db.verify(ctx, tenant, fn)
}
