package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// tokens are the OAuth grants the sandbox has issued.
type tokens struct {
	lifetime atomic.Int64 // nanoseconds

	mu      sync.RWMutex
	access  map[string]grant
	refresh map[string]grant
	seq     uint64
}

// grant is what a token stands for.
type grant struct {
	expires  time.Time // zero: never (refresh tokens, the demo key)
	userType string    // Location or Company
}

type tokenKey struct{}

func withToken(ctx context.Context, g grant) context.Context {
	return context.WithValue(ctx, tokenKey{}, g)
}

func tokenOf(ctx context.Context) grant {
	g, _ := ctx.Value(tokenKey{}).(grant)
	return g
}

func newTokens() *tokens {
	t := &tokens{}
	t.lifetime.Store(int64(DefaultTokenLifetime))
	t.reset()
	return t
}

func (t *tokens) reset() {
	t.mu.Lock()
	t.access, t.refresh = map[string]grant{}, map[string]grant{}
	t.mu.Unlock()
}

// mint makes an unguessable-enough, unique token. The sandbox's tokens are
// not secrets; they only have to differ.
func (t *tokens) mint(prefix string) string {
	t.seq++
	sum := sha256.Sum256([]byte(prefix + strconv.FormatUint(t.seq, 10) + strconv.FormatInt(time.Now().UnixNano(), 10)))
	return prefix + hex.EncodeToString(sum[:16])
}

// authorize resolves the bearer token of a request.
func (s *Server) authorize(r *http.Request) (grant, bool) {
	h := r.Header.Get("Authorization")
	const bearer = "Bearer "
	if len(h) <= len(bearer) || !equalFoldASCII(h[:len(bearer)], bearer) {
		return grant{}, false
	}
	tok := h[len(bearer):]
	switch tok {
	case DemoKey:
		return grant{userType: "Location"}, true
	case DemoAgencyKey:
		return grant{userType: "Company"}, true
	}
	s.oauth.mu.RLock()
	g, ok := s.oauth.access[tok]
	s.oauth.mu.RUnlock()
	if !ok || (!g.expires.IsZero() && !s.now().Before(g.expires)) {
		return grant{}, false
	}
	return g, true
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// token is POST /oauth/token: client_credentials, refresh_token or
// authorization_code, form-encoded. Each refresh issues a new refresh
// token and invalidates the one used.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "Bad Request")
		return
	}
	f := r.PostForm
	var invalid []string
	for _, k := range []string{"client_id", "client_secret"} {
		if f.Get(k) == "" {
			invalid = append(invalid, k+" should not be empty")
		}
	}
	grantType := f.Get("grant_type")
	switch grantType {
	case "client_credentials", "refresh_token", "authorization_code":
	default:
		invalid = append(invalid, "grant_type must be one of the following values: authorization_code, refresh_token, client_credentials")
	}
	userType := f.Get("user_type")
	if userType == "" {
		userType = "Location"
	}
	if userType != "Location" && userType != "Company" {
		invalid = append(invalid, "user_type must be one of the following values: Company, Location")
	}
	if len(invalid) > 0 {
		writeInvalid(w, invalid)
		return
	}
	if f.Get("client_id") != DemoClientID || f.Get("client_secret") != DemoClientSecret {
		writeJSON(w, http.StatusUnauthorized, errorBody{StatusCode: 401, Message: "Invalid client: client credentials are invalid", Error: "Unauthorized"})
		return
	}
	o := s.oauth
	o.mu.Lock()
	switch grantType {
	case "refresh_token":
		old := f.Get("refresh_token")
		g, ok := o.refresh[old]
		if !ok {
			o.mu.Unlock()
			writeJSON(w, http.StatusUnauthorized, errorBody{StatusCode: 401, Message: "Invalid grant: refresh token is invalid", Error: "Unauthorized"})
			return
		}
		delete(o.refresh, old)
		userType = g.userType
	case "authorization_code":
		if f.Get("code") != DemoAuthCode {
			o.mu.Unlock()
			writeJSON(w, http.StatusUnauthorized, errorBody{StatusCode: 401, Message: "Invalid grant: authorization code is invalid", Error: "Unauthorized"})
			return
		}
	}
	lifetime := time.Duration(o.lifetime.Load())
	access, refresh := o.mint("mf-at-"), o.mint("mf-rt-")
	o.access[access] = grant{expires: s.now().Add(lifetime), userType: userType}
	o.refresh[refresh] = grant{userType: userType}
	o.mu.Unlock()
	body := map[string]any{
		"access_token":  access,
		"token_type":    "Bearer",
		"expires_in":    int(lifetime / time.Second),
		"refresh_token": refresh,
		"scope":         "users.readonly users.write payments.readonly payments.write oauth.readonly oauth.write",
		"userType":      userType,
		"companyId":     DemoCompanyID,
		"userId":        InstallerUserID,
	}
	if userType == "Location" {
		body["locationId"] = DemoLocationID
	} else {
		body["approvedLocations"] = []string{DemoLocationID}
		body["isBulkInstallation"] = false
	}
	writeJSON(w, http.StatusOK, body)
}

// agencyOnly answers GoHighLevel's 401 to a location token on a route
// the document secures with Agency-Access (or Agency-Access-Only) alone,
// and reports whether it did.
func agencyOnly(w http.ResponseWriter, r *http.Request) bool {
	if tokenOf(r.Context()).userType == "Company" {
		return false
	}
	writeJSON(w, http.StatusUnauthorized, errorBody{StatusCode: 401, Message: "This route is only available to Agency access tokens", Error: "Unauthorized"})
	return true
}

// locationToken is POST /oauth/locationToken: a company (agency) token
// buys a token for one of its locations.
func (s *Server) locationToken(w http.ResponseWriter, r *http.Request) {
	if agencyOnly(w, r) {
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "Bad Request")
		return
	}
	var invalid []string
	for _, k := range []string{"companyId", "locationId"} {
		if r.PostForm.Get(k) == "" {
			invalid = append(invalid, k+" should not be empty")
		}
	}
	if len(invalid) > 0 {
		writeInvalid(w, invalid)
		return
	}
	if r.PostForm.Get("companyId") != DemoCompanyID || r.PostForm.Get("locationId") != DemoLocationID {
		writeError(w, http.StatusBadRequest, "The app is not installed on this location")
		return
	}
	o := s.oauth
	lifetime := time.Duration(o.lifetime.Load())
	o.mu.Lock()
	access := o.mint("mf-at-")
	o.access[access] = grant{expires: s.now().Add(lifetime), userType: "Location"}
	o.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access,
		"token_type":   "Bearer",
		"expires_in":   int(lifetime / time.Second),
		"scope":        "users.readonly users.write payments.readonly payments.write",
		"locationId":   DemoLocationID,
		"userId":       InstallerUserID,
	})
}

// installedLocations is GET /oauth/installedLocations: the demo app is
// installed on the demo location only, not on the company's others.
func (s *Server) installedLocations(w http.ResponseWriter, r *http.Request) {
	if agencyOnly(w, r) {
		return
	}
	q := r.URL.Query()
	var invalid []string
	for _, k := range []string{"companyId", "appId"} {
		if q.Get(k) == "" {
			invalid = append(invalid, k+" should not be empty")
		}
	}
	if len(invalid) > 0 {
		writeInvalid(w, invalid)
		return
	}
	locations := []map[string]any{}
	if q.Get("companyId") == DemoCompanyID {
		locations = append(locations, map[string]any{
			"_id":         DemoLocationID,
			"name":        "Memberflow Sandbox Association",
			"address":     "1 Sandbox Way, Springfield, IL 62701, USA",
			"isInstalled": true,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"locations": locations, "count": len(locations), "installToFutureLocations": false})
}
