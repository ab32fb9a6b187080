// Package batch is the gathering loop of the stores' group commit, shared
// by storage/sqlite and storage/postgres.
package batch

// Run hands queued work to commit in batches until closing is closed: it
// waits for one item, adds whatever else is already queued (at most max in
// all) and commits them together, so that work arriving while one commit
// syncs goes into the next. After closing it commits, one at a time, what
// was queued before, and returns.
func Run[T any](ops <-chan T, closing <-chan struct{}, max int, commit func([]T)) {
	for {
		var first T
		select {
		case first = <-ops:
		case <-closing:
			for {
				select {
				case o := <-ops:
					commit([]T{o})
				default:
					return
				}
			}
		}
		b := []T{first}
	gather:
		for len(b) < max {
			select {
			case o := <-ops:
				b = append(b, o)
			default:
				break gather
			}
		}
		commit(b)
	}
}
