package sandbox

import (
	"fmt"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/internal/sandboxkit"
)

func init() {
	sandboxkit.Register(sandboxkit.Registration{
		Name:   "accredible",
		New:    func(o sandboxkit.Options) sandboxkit.Service { return New(o) },
		Auth:   connectors.Auth{Type: connectors.AuthAPIKey, Key: DemoKey},
		Limits: "2,000 per 5 minutes, the v1 search 100 per minute",
		Hints: func(url string) []string {
			return []string{
				"key:    " + DemoKey,
				fmt.Sprintf(`curl -H 'Authorization: Token token=%s' -H 'Content-Type: application/json' -d '{"query":{},"page":{"from":0,"size":5}}' '%s/v2/credentials/search'`, DemoKey, url),
				fmt.Sprintf("curl -H 'Authorization: Token token=%s' '%s/v1/issuer/all_groups'", DemoKey, url),
			}
		},
		Failure: `{"error":"Internal Server Error"}`,
	})
}
