package postgres

// Internals the package's external tests look at.
var (
	SinceQueries     = sinceQueries
	AuditHashesQuery = auditHashesQuery
)
