package all

import (
	"testing"

	"github.com/memberflow/memberflow/connectors"
	"github.com/memberflow/memberflow/connectors/accelevents"
	"github.com/memberflow/memberflow/connectors/accredible"
	"github.com/memberflow/memberflow/connectors/memberships"
)

// BenchmarkSpecsAndCheck is what a process pays, once, for the connectors
// a recipe uses: building their specs from the OpenAPI documents and the
// registry's check.
func BenchmarkSpecsAndCheck(b *testing.B) {
	for i := 0; i < b.N; i++ {
		for _, s := range []*connectors.Spec{memberships.Spec(), accredible.Spec(), accelevents.Spec()} {
			if err := connectors.Check(s); err != nil {
				b.Fatal(err)
			}
		}
	}
}
