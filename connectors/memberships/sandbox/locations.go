package sandbox

import "net/http"

// getLocation is GET /locations/{locationId}, GoHighLevel's sub-account
// endpoint, served for the one demo location: the runner asks it which
// account a connection reaches (connectors.Identifier).
func (s *Server) getLocation(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("locationId") != DemoLocationID {
		writeJSON(w, http.StatusForbidden, errorBody{StatusCode: 403, Message: "The token does not have access to this location.", Error: "Forbidden"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"location": map[string]any{
		"id":        DemoLocationID,
		"companyId": DemoCompanyID,
		"name":      "Memberflow Sandbox Association",
		"address":   "1 Sandbox Way",
		"city":      "Springfield",
		"state":     "IL",
		"country":   "US",
		"timezone":  "America/Chicago",
	}})
}
