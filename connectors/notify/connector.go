// Package notify is the built-in connector that tells people: `webhook`
// (a JSON POST signed with HMAC-SHA256, the scheme memberflow's own
// webhook triggers verify), `slack` (an incoming-webhook message with
// blocks) and `email` (SMTP with STARTTLS, through
// github.com/wneessen/go-mail). One connection is one destination; its
// secrets are references like every connection's. Alert recipes
// (connectors/memberflow triggers) use it; any recipe may.
package notify

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/apiclient"
)

// Name is the connector name recipes use.
const Name = "notify"

const optionsSchema = `{
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "from": {"type": "string", "minLength": 3, "description": "email: the sender address."},
    "username": {"type": "string", "description": "email: the SMTP user name (the password is auth.key); no login without one."},
    "tls": {"type": "string", "enum": ["starttls", "opportunistic", "none"], "description": "email: starttls (default) refuses a server without STARTTLS; none is for a local relay only."},
    "caFile": {"type": "string", "description": "email: PEM file of the CA that signed the SMTP server's certificate, for a private relay."},
    "consoleURL": {"type": "string", "description": "slack: base URL of the memberflow console; runs are linked as <consoleURL>/runs/<id>."}
  }
}`

// Notifier is an opened notify connection.
type Notifier struct {
	name    string
	base    *url.URL
	auth    connectors.Auth
	secret  string
	opts    options
	http    *http.Client
	redact  *apiclient.Redactor
	log     hclog.Logger
	dryRun  func(connectors.PlannedWrite)
	now     func() time.Time
	timeout time.Duration
	roots   *x509.CertPool
}

type options struct {
	from, username, tls, caFile, consoleURL string
}

// Spec returns a fresh spec of the connector.
func Spec() *connectors.Spec {
	return &connectors.Spec{
		Name:    Name,
		Title:   "Notifications",
		Summary: "Tell people: a signed JSON webhook, a Slack incoming webhook, or an email over SMTP with STARTTLS.",
		Description: "A built-in connector. A connection is one destination: `base_url` is the webhook's URL, " +
			"Slack's `https://hooks.slack.com` (with `auth: {type: bearer, token: <the T…/B…/… part of the incoming-webhook URL>}`), " +
			"or an SMTP server `smtp://host:587` (with `auth: {type: api_key, key: <password>}` and `options.username`, `options.from`). " +
			"Webhook bodies are signed with the connection's `webhook.secret`: header `" + SignatureHeader + ": t=<unix>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">`.",
		Auth:    []connectors.AuthKind{connectors.AuthNone, connectors.AuthBearer, connectors.AuthAPIKey},
		Options: json.RawMessage(optionsSchema),
		Actions: []*connectors.ActionSpec{webhookAction(), slackAction(), emailAction()},
		Open:    Open,
	}
}

func init() { connectors.MustRegister(Spec()) }

// Open makes a connection. It does no I/O beyond reading options.caFile.
func Open(cfg connectors.ConnectionConfig) (connectors.Conn, error) {
	n := &Notifier{name: cfg.Name, auth: cfg.Auth, secret: cfg.Webhook.Secret, log: cfg.Logger, dryRun: cfg.DryRun,
		http: cfg.HTTPClient, now: time.Now, timeout: cfg.Timeout}
	if n.log == nil {
		n.log = hclog.NewNullLogger()
	}
	if n.http == nil {
		n.http = &http.Client{Transport: apiclient.DefaultTransport()}
	}
	if n.timeout <= 0 {
		n.timeout = 30 * time.Second
	}
	secrets := cfg.Auth.Secrets()
	if n.secret != "" {
		secrets = append(secrets, n.secret)
	}
	n.redact = apiclient.NewRedactor(secrets...)
	if cfg.BaseURL == "" {
		return nil, fmt.Errorf("notify: connection %q: base_url is empty: the webhook URL, https://hooks.slack.com or smtp://host:port", cfg.Name)
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("notify: connection %q: base_url %q is not an absolute URL", cfg.Name, cfg.BaseURL)
	}
	switch u.Scheme {
	case "http", "https", "smtp":
	default:
		return nil, fmt.Errorf("notify: connection %q: base_url %q: scheme must be http, https or smtp", cfg.Name, cfg.BaseURL)
	}
	n.base = u
	str := func(key string) (string, error) {
		v, ok := cfg.Options[key]
		if !ok {
			return "", nil
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("notify: connection %q: option %s must be a string", cfg.Name, key)
		}
		return s, nil
	}
	for key, into := range map[string]*string{"from": &n.opts.from, "username": &n.opts.username, "tls": &n.opts.tls, "caFile": &n.opts.caFile, "consoleURL": &n.opts.consoleURL} {
		if *into, err = str(key); err != nil {
			return nil, err
		}
	}
	if n.opts.tls == "" {
		n.opts.tls = "starttls"
	}
	if n.opts.caFile != "" {
		pem, err := os.ReadFile(n.opts.caFile)
		if err != nil {
			return nil, fmt.Errorf("notify: connection %q: option caFile: %w", cfg.Name, err)
		}
		n.roots = x509.NewCertPool()
		if !n.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("notify: connection %q: option caFile %s holds no PEM certificate", cfg.Name, n.opts.caFile)
		}
	}
	return n, nil
}

func (n *Notifier) tlsConfig() *tls.Config {
	return &tls.Config{ServerName: n.base.Hostname(), RootCAs: n.roots, MinVersion: tls.VersionTLS12}
}

func (n *Notifier) smtpPort() int {
	if p, err := strconv.Atoi(n.base.Port()); err == nil {
		return p
	}
	return 587
}
