package form

// Latest returns the newest version of the form named name, and false if
// the registry holds none of that name.
func (r *Registry) Latest(name string) (*Form, bool) {
	if r == nil {
		return nil, false
	}
	var best *Form
	for k, f := range r.forms {
		if k.name == name && (best == nil || k.version > best.Version) {
			best = f
		}
	}
	return best, best != nil
}
