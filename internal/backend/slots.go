package backend

// Place publishes server s at snapshot index s.Index: one past the last
// index appends a slot, a smaller one puts s in place of the server there
// (a server reconfigured or added again under a name it had before).
// Indexes never change, so that routers built for an earlier snapshot stay
// valid. h is s's health; nil keeps the slot's. Placing does not call
// OnChange.
func (r *Registry) Place(s *Server, h *Health) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.snap.Load()
	views := append([]ServerView(nil), old.Servers...)
	v := ServerView{Server: s}
	if s.Index < len(views) {
		v.Health = views[s.Index].Health
	}
	if h != nil {
		v.Health = *h
		v.Health.Since = r.now()
	}
	s.down.Store(v.Health.State == Unavailable)
	if s.Index == len(views) {
		views = append(views, v)
	} else {
		views[s.Index] = v
	}
	r.snap.Store(&Snapshot{Servers: views, Version: old.Version + 1})
}
