package sqlite

// Internals the package's external tests look at.
var (
	Migrations   = migrations
	SinceQueries = sinceQueries
	// AuditHashesQuery is AuditHashes' statement.
	AuditHashesQuery = auditHashesQuery
	// ListQueries are ListSubmissions' statements, without and with a
	// filter by commune; OpensSinceQuery is OpensSince's.
	ListQueries     = listQueries
	OpensSinceQuery = opensSinceQuery
)
