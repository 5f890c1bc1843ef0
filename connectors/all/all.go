// Package all registers every built-in connector with connectors.Default.
// Import it for its side effects; engine/ never does.
package all

//go:generate go run ../../internal/docgen -dir ../../docs/connectors

import (
	// Each connector registers itself in its init.
	_ "github.com/memberflow/memberflow/connectors/accelevents"
	_ "github.com/memberflow/memberflow/connectors/accredible"
	_ "github.com/memberflow/memberflow/connectors/files"
	_ "github.com/memberflow/memberflow/connectors/memberflow"
	_ "github.com/memberflow/memberflow/connectors/memberships"
	_ "github.com/memberflow/memberflow/connectors/notify"

	// Each sandbox registers itself with internal/sandboxkit in its init.
	_ "github.com/memberflow/memberflow/connectors/accelevents/sandbox"
	_ "github.com/memberflow/memberflow/connectors/accredible/sandbox"
	_ "github.com/memberflow/memberflow/connectors/memberships/sandbox"
)
