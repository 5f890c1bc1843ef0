// Package all registers every built-in connector with connectors.Default.
// Import it for its side effects; engine/ never does.
package all

import (
// Each connector registers itself in its init.
)
