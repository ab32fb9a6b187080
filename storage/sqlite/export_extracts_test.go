package sqlite

// ExtractQuery is ExtractSubmissions' statement, for its query plan.
const ExtractQuery = extractQuery
