package dashboard

import "net/http"

// connectionBody is the data of a connection's page.
type connectionBody struct {
	Status    ConnectionStatus
	ShowProbe bool
}

// connection shows one connection's state as the application reports it:
// sync state, resource types the EHR did not grant, and the outcome of the
// last bulk export of each scope (what is incomplete, why, which files).
func (d *Dashboard) connection(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("connection")
	for _, s := range d.statuses(r.Context()) {
		if s.Name == name {
			d.render(w, r, http.StatusOK, "connection", "Connection "+name, connectionBody{Status: s, ShowProbe: d.opts.Probe != nil})
			return
		}
	}
	d.notFound(w, r)
}
