package recipes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memberflow/memberflow/connectors"
)

func loadShared(t *testing.T, conns string) *Recipe {
	t.Helper()
	rs, diags := Load(Options{Registry: testRegistry(), Connections: []string{conns}}, "testdata/shared/recipes/welcome.yaml")
	if len(diags) > 0 || len(rs) != 1 {
		t.Fatalf("diagnostics:\n%v", diags)
	}
	return rs[0]
}

func TestResolve(t *testing.T) {
	r := loadShared(t, "testdata/shared/connections.sandbox.yaml")
	cases := []struct {
		name    string
		conn    string
		secrets SecretMap
		check   func(t *testing.T, cfg connectors.ConnectionConfig)
		wantErr string
	}{
		{
			name: "bearer and webhook", conn: "members",
			secrets: SecretMap{"SANDBOX_TOKEN": "tok-1", "SANDBOX_HOOK": "hook-1"},
			check: func(t *testing.T, cfg connectors.ConnectionConfig) {
				if cfg.Auth.Type != connectors.AuthBearer || cfg.Auth.Token != "tok-1" {
					t.Errorf("auth = %+v", cfg.Auth)
				}
				if cfg.Webhook.Secret != "hook-1" || cfg.Webhook.Tolerance != 2*time.Minute {
					t.Errorf("webhook = %+v", cfg.Webhook)
				}
				if cfg.BaseURL != "http://127.0.0.1:8081" || cfg.Options["locationId"] != "loc-sandbox" {
					t.Errorf("config = %+v", cfg)
				}
			},
		},
		{
			name: "rate limit off", conn: "certs", secrets: SecretMap{"SANDBOX_KEY": "k"},
			check: func(t *testing.T, cfg connectors.ConnectionConfig) {
				if cfg.RateLimit == nil || !cfg.RateLimit.Unlimited() {
					t.Errorf("rate limit = %+v, want off", cfg.RateLimit)
				}
				if cfg.Auth.Key != "k" {
					t.Errorf("key not resolved")
				}
			},
		},
		{name: "missing secrets are named", conn: "members", secrets: SecretMap{"SANDBOX_TOKEN": "tok-1"},
			wantErr: `connection "members": secret SANDBOX_HOOK is not set`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := r.Connections[tc.conn].Resolve(tc.secrets)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				for _, v := range tc.secrets {
					if strings.Contains(err.Error(), v) {
						t.Errorf("error shows a secret value: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, cfg)
		})
	}
}

func TestEnvSecrets(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secrets.env")
	content := "# comment\n\nexport FROM_FILE=\"quoted value\"\nBOTH=file\nPLAIN=a=b\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BOTH", "env")
	src, err := NewEnvSecrets(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"FROM_FILE": "quoted value", "BOTH": "env", "PLAIN": "a=b"} {
		if got, ok := src.Lookup(name); !ok || got != want {
			t.Errorf("%s = %q, %v; want %q", name, got, ok, want)
		}
	}
	if _, ok := src.Lookup("MF_SURELY_UNSET_SECRET"); ok {
		t.Error("found a secret that does not exist")
	}
	bad := filepath.Join(dir, "bad.env")
	if err := os.WriteFile(bad, []byte("OK=1\nnot a pair s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = ReadSecretsFile(bad)
	if err == nil || !strings.Contains(err.Error(), "bad.env:2") || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("err = %v, want the line and no content", err)
	}
}

func TestDynamicSecretRefused(t *testing.T) {
	_, diags := LoadBytes("r.yaml", []byte(`version: 1
name: r
connections:
  members: { connector: crm, auth: { type: bearer, token: "${{ secret['T' + 'OK'] }}" }, options: { locationId: loc-1 } }
trigger: { uses: members.user_created }
steps: [ { uses: members.get_user, with: { userId: a } } ]
`), Options{Registry: testRegistry()})
	want := `r.yaml:4:64: error: connection "members" auth: write secrets as secret.NAME: the names must be known before the run`
	if len(diags) != 1 || diags[0].Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", diags, want)
	}
}

// Two --connections files that both define a connection are an error at
// the second definition: which one wins must never be a question.
func TestAConnectionInTwoConnectionsFilesIsAnError(t *testing.T) {
	_, diags := Load(Options{Registry: testRegistry(), Connections: []string{"testdata/shared/connections.yaml", "testdata/shared/connections.sandbox.yaml"}},
		"testdata/shared/recipes/welcome.yaml")
	found := false
	for _, d := range diags {
		if d.Severity == Error && d.Subject != nil && strings.HasSuffix(d.Subject.File, "connections.sandbox.yaml") && d.Subject.Start.Line > 0 &&
			strings.Contains(d.Summary, `is also defined in testdata/shared/connections.yaml`) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no error at the second definition:\n%v", diags)
	}
}
