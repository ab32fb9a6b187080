package sqlite

// FormInUseQuery is FormInUse's statement, for its query plan.
const FormInUseQuery = formInUseQuery
