package proxy

// Observers hears about operations through each of its observers in turn.
type Observers []Observer

// Forwarded implements Observer.
func (os Observers) Forwarded(req *Request, out Outcome) {
	for _, o := range os {
		o.Forwarded(req, out)
	}
}

// Observe reports an operation the frontend answered itself (Server and
// Algorithm empty) to the proxy's observer, so that access logs and metrics
// see every operation.
func (p *Proxy) Observe(req *Request, out Outcome) {
	if p != nil && p.observer != nil {
		p.observer.Forwarded(req, out)
	}
}

// answeredBy is the server whose result reached the client, or "" when the
// proxy answered (no server, or a failure reply after a failed attempt).
func (o *Outcome) answeredBy() string {
	if o.Server == "" || (len(o.Failed) > 0 && o.Failed[len(o.Failed)-1] == o.Server) {
		return ""
	}
	return o.Server
}
