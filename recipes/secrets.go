package recipes

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

// SecretSource looks secrets up by name (secret.NAME in recipes).
type SecretSource interface {
	Lookup(name string) (string, bool)
}

// SecretMap is a SecretSource held in memory (tests, a secrets file).
type SecretMap map[string]string

// Lookup returns the named secret.
func (m SecretMap) Lookup(name string) (string, bool) {
	v, ok := m[name]
	return v, ok
}

// EnvSecrets reads secrets from the environment and, when File is set,
// from a KEY=value file; the environment wins, so that a deployment can
// override one value of a shared file.
type EnvSecrets struct {
	File SecretMap
}

// Lookup returns the named secret.
func (e *EnvSecrets) Lookup(name string) (string, bool) {
	if v, ok := os.LookupEnv(name); ok {
		return v, true
	}
	if e != nil && e.File != nil {
		return e.File.Lookup(name)
	}
	return "", false
}

// NewEnvSecrets returns the environment as a SecretSource, with the
// secrets file at path behind it when path is not empty.
func NewEnvSecrets(path string) (*EnvSecrets, error) {
	if path == "" {
		return &EnvSecrets{}, nil
	}
	m, err := ReadSecretsFile(path)
	if err != nil {
		return nil, err
	}
	return &EnvSecrets{File: m}, nil
}

// ReadSecretsFile reads KEY=value lines: blank lines and # comments are
// skipped, `export ` is allowed, a value may be in single or double
// quotes. Errors name the line, never the value.
func ReadSecretsFile(path string) (SecretMap, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secrets file: %w", err)
	}
	defer f.Close()
	m := SecretMap{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s:%d: expected KEY=value", path, n)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		m[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("secrets file %s: %w", path, err)
	}
	return m, nil
}

// SecretNames lists the secrets the connection needs, sorted.
func (c *Connection) SecretNames() []string { return c.secretNames(true) }

func (c *Connection) secretNames(webhook bool) []string {
	groups := []map[string]*Template{c.Auth}
	if webhook {
		groups = append(groups, c.Webhook)
	}
	seen := map[string]bool{}
	for _, group := range groups {
		for _, t := range group {
			for _, e := range t.Expressions() {
				for _, n := range e.SecretNames() {
					seen[n] = true
				}
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Resolve evaluates the connection's templates with the secrets it needs.
// A missing secret is an error that names it; secret values never appear
// in an error.
func (c *Connection) Resolve(secrets SecretSource) (connectors.ConnectionConfig, error) {
	return c.resolve(secrets, true)
}

func (c *Connection) resolve(secrets SecretSource, webhook bool) (connectors.ConnectionConfig, error) {
	cfg := connectors.ConnectionConfig{Name: c.Name, BaseURL: c.BaseURL, Options: c.Options, RateLimit: c.RateLimit}
	vals := map[string]string{}
	var missing []string
	for _, n := range c.secretNames(webhook) {
		v, ok := "", false
		if secrets != nil {
			v, ok = secrets.Lookup(n)
		}
		if !ok || v == "" {
			missing = append(missing, n)
			continue
		}
		vals[n] = v
	}
	if len(missing) > 0 {
		return cfg, fmt.Errorf("connection %q: secret %s is not set (environment or secrets file)", c.Name, strings.Join(missing, ", "))
	}
	env := Env{"secret": vals}
	str := func(group map[string]*Template, field string) (string, error) {
		t, ok := group[field]
		if !ok {
			return "", nil
		}
		v, err := t.Eval(env)
		if err != nil {
			return "", fmt.Errorf("connection %q: %s: %s", c.Name, field, redact(err.Error(), vals))
		}
		switch v := v.(type) {
		case nil:
			return "", nil
		case string:
			return v, nil
		default:
			return fmt.Sprint(v), nil
		}
	}
	var err error
	get := func(group map[string]*Template, field string) string {
		if err != nil {
			return ""
		}
		var v string
		v, err = str(group, field)
		return v
	}
	a := &cfg.Auth
	a.Type = connectors.AuthKind(get(c.Auth, "type"))
	if a.Type == "" {
		a.Type = connectors.AuthNone
	}
	a.Key, a.Header, a.Scheme = get(c.Auth, "key"), get(c.Auth, "header"), get(c.Auth, "scheme")
	a.Token = get(c.Auth, "token")
	a.ClientID, a.ClientSecret = get(c.Auth, "client_id"), get(c.Auth, "client_secret")
	a.RefreshToken, a.TokenURL = get(c.Auth, "refresh_token"), get(c.Auth, "token_url")
	if t, ok := c.Auth["scopes"]; ok && err == nil {
		v, evalErr := t.Eval(env)
		if evalErr != nil {
			return cfg, fmt.Errorf("connection %q: scopes: %s", c.Name, redact(evalErr.Error(), vals))
		}
		list, _ := v.([]any)
		for _, s := range list {
			a.Scopes = append(a.Scopes, fmt.Sprint(s))
		}
	}
	if !webhook {
		return cfg, err
	}
	cfg.Webhook.Secret = get(c.Webhook, "secret")
	cfg.Webhook.PublicKey = get(c.Webhook, "public_key")
	if tol := get(c.Webhook, "tolerance"); tol != "" && err == nil {
		if cfg.Webhook.Tolerance, err = time.ParseDuration(tol); err != nil {
			return cfg, fmt.Errorf("connection %q: webhook.tolerance: %w", c.Name, err)
		}
	}
	return cfg, err
}

// UsedConnections names the connections the recipe's trigger and steps
// use, sorted: a shared connections file may define more.
func (r *Recipe) UsedConnections() []string {
	seen := map[string]bool{}
	if r.Trigger != nil && r.Trigger.Connection != "" {
		seen[r.Trigger.Connection] = true
	}
	for _, s := range r.Steps {
		seen[s.Connection] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		if _, ok := r.Connections[n]; ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// NeedsWebhook reports whether the recipe needs the named connection's
// webhook settings: its trigger takes webhook deliveries from the
// connection, or one of its steps signs what it sends with them.
func (r *Recipe) NeedsWebhook(connection string) bool {
	if r.Trigger != nil && r.Trigger.Connection == connection && r.Trigger.Mode == "webhook" {
		return true
	}
	for _, s := range r.Steps {
		if s.Connection == connection && s.SignsWithWebhook {
			return true
		}
	}
	return false
}

// SecretNames lists the secrets the recipe needs to run, sorted: the auth
// of each connection it uses, and the webhook settings of a connection
// that NeedsWebhook.
func (r *Recipe) SecretNames() []string {
	seen := map[string]bool{}
	for _, name := range r.UsedConnections() {
		for _, s := range r.Connections[name].secretNames(r.NeedsWebhook(name)) {
			seen[s] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ResolveConnection resolves one of the recipe's connections with only the
// secrets the recipe needs of it (no webhook key for a polling recipe).
func (r *Recipe) ResolveConnection(name string, secrets SecretSource) (connectors.ConnectionConfig, error) {
	c, ok := r.Connections[name]
	if !ok {
		return connectors.ConnectionConfig{}, fmt.Errorf("connection %q is not defined", name)
	}
	return c.resolve(secrets, r.NeedsWebhook(name))
}

// MissingSecret is a secret some recipes need and the source lacks.
type MissingSecret struct {
	Name string
	// NeededBy lists "recipe (connection)" pairs, sorted.
	NeededBy []string
}

// MissingSecrets lists every secret the recipes need that secrets does
// not hold (or holds empty), sorted by name, so that a run reports them
// all at once, before it starts.
func MissingSecrets(rs []*Recipe, secrets SecretSource) []MissingSecret {
	by := map[string]map[string]bool{}
	for _, r := range rs {
		for _, conn := range r.UsedConnections() {
			for _, n := range r.Connections[conn].secretNames(r.NeedsWebhook(conn)) {
				if v, ok := secrets.Lookup(n); ok && v != "" {
					continue
				}
				if by[n] == nil {
					by[n] = map[string]bool{}
				}
				by[n][fmt.Sprintf("%s (%s)", r.Name, conn)] = true
			}
		}
	}
	out := make([]MissingSecret, 0, len(by))
	for n, users := range by {
		m := MissingSecret{Name: n}
		for u := range users {
			m.NeededBy = append(m.NeededBy, u)
		}
		sort.Strings(m.NeededBy)
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// redact removes secret values from a message.
func redact(msg string, vals map[string]string) string {
	for _, v := range vals {
		if v != "" {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
		}
	}
	return msg
}
