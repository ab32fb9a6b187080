package postgres

// UsersQuery and PageGrantsQuery are Users' statements: a page of users,
// then their grants.
var (
	UsersQuery      = usersQuery
	PageGrantsQuery = pageGrantsQuery
)
