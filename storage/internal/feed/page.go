// Package feed holds what both storage backends do with a page of rows
// read before a caller's callback runs.
package feed

// Each calls fn for each item in order until fn returns false or an
// error. It reports whether fn still wanted more (true when it saw every
// item) and fn's error.
func Each[T any](items []T, fn func(T) (bool, error)) (more bool, err error) {
	for _, it := range items {
		more, err := fn(it)
		if err != nil || !more {
			return false, err
		}
	}
	return true, nil
}
