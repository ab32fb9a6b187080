package sqlite

// Internals the package's external tests look at.
var (
	Migrations   = migrations
	SinceQueries = sinceQueries
	// AuditHashesQuery is AuditHashes' statement.
	AuditHashesQuery = auditHashesQuery
)
