package sandbox

import (
	"net/http"
	"slices"
)

// Location is one sub-account of the demo company.
type Location struct {
	ID, Name, City string
}

// The company's other locations. An agency token reaches them all; a
// location token ([DemoKey], an OAuth token of user type Location) only
// the demo location, which is what every connection of the examples
// names. They are seeded (see Seed) so that a look-up that searches the
// whole company, as POST /users/search/filter-by-email does, meets users
// outside the connection's location, some with the same email as one of
// its members.
const (
	SecondLocationID = "mfSandboxLocation002"
	ThirdLocationID  = "mfSandboxLocation003"
)

// Locations are the demo company's sub-accounts, the demo location first.
var Locations = []Location{
	{DemoLocationID, "Memberflow Sandbox Association", "Springfield"},
	{SecondLocationID, "Memberflow Sandbox North Chapter", "Shelbyville"},
	{ThirdLocationID, "Memberflow Sandbox South Chapter", "Capital City"},
}

// reach returns the stores (locations) the request's token may read and
// write: a location token its own, an agency token every location of
// the company, the demo location first. mu is held.
func (s *Server) reach(r *http.Request) []*store {
	if tokenOf(r.Context()).userType == "Company" {
		return s.locs
	}
	return s.locs[:1]
}

// locationStore returns the store of a location the request's token
// reaches; otherwise it answers 400 as checkScope does and returns nil.
// mu is held.
func (s *Server) locationStore(w http.ResponseWriter, r *http.Request, id string) *store {
	for _, st := range s.reach(r) {
		if st.location == id {
			return st
		}
	}
	noAccess(w)
	return nil
}

// findUser finds a live user by id in any location; mu is held.
func (s *Server) findUser(id string) (*store, int32, bool) {
	for _, st := range s.locs {
		if idx, ok := st.lookupUser(id); ok {
			return st, idx, true
		}
	}
	return nil, 0, false
}

// getLocation is GET /locations/{locationId}, GoHighLevel's sub-account
// endpoint, for the locations the token reaches: the runner asks it which
// account a connection reaches (connectors.Identifier).
func (s *Server) getLocation(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("locationId")
	i := slices.IndexFunc(Locations, func(l Location) bool { return l.ID == id })
	s.mu.RLock()
	reached := slices.ContainsFunc(s.reach(r), func(st *store) bool { return st.location == id })
	s.mu.RUnlock()
	if i < 0 || !reached {
		writeJSON(w, http.StatusForbidden, errorBody{StatusCode: 403, Message: "The token does not have access to this location.", Error: "Forbidden"})
		return
	}
	l := Locations[i]
	writeJSON(w, http.StatusOK, map[string]any{"location": map[string]any{
		"id":        l.ID,
		"companyId": DemoCompanyID,
		"name":      l.Name,
		"address":   "1 Sandbox Way",
		"city":      l.City,
		"state":     "IL",
		"country":   "US",
		"timezone":  "America/Chicago",
	}})
}
