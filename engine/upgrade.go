package engine

import (
	"errors"
	"fmt"
	"strings"
)

// ErrRunnersLive is a store's refusal to migrate its schema while runners
// (of the older memberflow, presumably) use it: such a runner would keep
// writing by the old schema's rules on the migrated one (docs/deploy.md,
// "Upgrading").
var ErrRunnersLive = errors.New("runners still use the store")

// maxNamed bounds the runners a refusal names.
const maxNamed = 3

// RunnersInTheWay is the refusal to migrate a store's schema from version
// from to to while owners use it; note, when not empty, ends the message.
func RunnersInTheWay(from, to int, owners []string, note string) error {
	named := owners
	more := ""
	if len(named) > maxNamed {
		more = fmt.Sprintf(" and %d more", len(named)-maxNamed)
		named = named[:maxNamed]
	}
	if note != "" {
		note = "; " + note
	}
	return fmt.Errorf("%w: the schema is at version %d and this memberflow would migrate it to %d, "+
		"but %d runner(s) still use the store (%s%s); a runner of the older memberflow would lose or repeat runs "+
		"on the migrated schema: stop every runner of this store, then start this memberflow, which migrates it, "+
		"then the other runners with this version (docs/deploy.md, \"Upgrading\")%s",
		ErrRunnersLive, from, to, len(owners), strings.Join(named, ", "), more, note)
}
