package postgres

// Internals the package's external tests look at.
var (
	SinceQueries     = sinceQueries
	AuditHashesQuery = auditHashesQuery
	// ListQueries are ListSubmissions' statements, without and with a
	// filter by commune; OpensSinceQuery is OpensSince's.
	ListQueries     = listQueries
	OpensSinceQuery = opensSinceQuery
)
